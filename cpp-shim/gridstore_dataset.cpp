#include "gridstore_dataset.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <new>

namespace
{
// The data of band `band` from a band-sequential w x h buffer into a block-sized buffer.
void CopyPlane(const GByte *planes, int band, int w, int h, int dataSize, int blockSize,
               void *block)
{
    const size_t plane = static_cast<size_t>(w) * h * dataSize;
    const GByte *src = planes + plane * band;
    GByte *dst = static_cast<GByte *>(block);
    if (w != blockSize || h != blockSize)
        memset(dst, 0, static_cast<size_t>(blockSize) * blockSize * dataSize);
    for (int y = 0; y < h; y++)
        memcpy(dst + static_cast<size_t>(y) * blockSize * dataSize,
               src + static_cast<size_t>(y) * w * dataSize, static_cast<size_t>(w) * dataSize);
}
}  // namespace

/************************************************************************/
/*                           GridstoreDataset                           */
/************************************************************************/

GridstoreDataset::GridstoreDataset(std::shared_ptr<GsStore> store, int level,
                                   GDALAccess access)
    : m_store(std::move(store)), m_level(level)
{
    eAccess = access;
    // Statistics, histograms and other metadata GDAL derives from the pixels describe one
    // snapshot, but PAM would keep them in a .aux.xml sidecar (inside the store when it is
    // opened by its manifest, beside it when opened by its directory) that outlives the
    // next write, so readers would see old figures for new data. PAM is off for stores:
    // no sidecar is read or written, and derived metadata lives as long as the handle.
    nPamFlags |= GPF_DISABLED;
    gridstore_dataset_info(m_store.get(), &m_info);
    gridstore_level_size(m_store.get(), level, &nRasterXSize, &nRasterYSize);
    for (int b = 1; b <= m_info.band_count; b++)
        SetBand(b, new GridstoreBand(this, b));
    m_alphaIsMask = AlphaIsMask();
    if (m_info.mask_flags & GMF_PER_DATASET)
        m_mask.reset(new GridstoreMaskBand(this, 0));
    if (level == 0)
    {
        // Metadata set through the base class does not mark the PAM file dirty: it comes
        // from the store, not from the user.
        GDALDataset::SetMetadata(gridstore_metadata(m_store.get(), ""));
        GDALDataset::SetMetadata(gridstore_metadata(m_store.get(), "IMAGE_STRUCTURE"),
                                 "IMAGE_STRUCTURE");
        char **subdatasets = gridstore_metadata(m_store.get(), "SUBDATASETS");
        if (subdatasets != nullptr && subdatasets[0] != nullptr)
            GDALDataset::SetMetadata(subdatasets, "SUBDATASETS");
        // Each level becomes a dataset when first asked for (GetOverview): opening a store
        // must not cost more for the levels a large store has.
        m_overviews.resize(m_info.level_count > 1 ? m_info.level_count - 1 : 0);
    }
}

GridstoreDataset::~GridstoreDataset()
{
    // A destructor must not throw: an exception here would end the process.
    try
    {
        FlushCache(true);
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_AppDefined, "GRIDSTORE: unexpected error closing %s",
                 GetDescription());
    }
}

void GridstoreDataset::FlushCache(bool bAtClosing)
{
    try
    {
        GDALPamDataset::FlushCache(bAtClosing);
        // A failure is reported by the Rust side; nothing of the write is committed.
        if (eAccess != GA_Update || m_level != 0)
            return;
        const bool wasCreating = m_info.creating != 0;
        if (gridstore_flush(m_store.get(), bAtClosing ? 1 : 0) != 0)
            return;
        ForgetStatistics();
        // The commit that makes a new store replaces what the dataset was told about it.
        if (wasCreating)
        {
            gridstore_dataset_info(m_store.get(), &m_info);
            if (m_info.creating == 0)
                RefreshInfo();
        }
    }
    catch (const std::bad_alloc &)
    {
        CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory committing");
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_AppDefined, "GRIDSTORE: unexpected error committing");
    }
}

void GridstoreDataset::ForgetStatistics()
{
    for (int b = 1; b <= nBands; b++)
    {
        GDALRasterBand *band = GetRasterBand(b);
        CPLStringList kept;
        for (CSLConstList item = band->GetMetadata(); item && *item; item++)
            if (!STARTS_WITH(*item, "STATISTICS_"))
                kept.AddString(*item);
        // Through the base class, as the metadata the store itself gives is set.
        band->GDALMajorObject::SetMetadata(kept.List());
    }
}

void GridstoreDataset::RefreshInfo()
{
    gridstore_dataset_info(m_store.get(), &m_info);
    m_srs.reset();
    for (int b = 1; b <= nBands; b++)
        static_cast<GridstoreBand *>(GetRasterBand(b))->Refresh();
    // A band may have become an alpha band, and the first commit tells whether the store
    // has pixels without data.
    m_alphaIsMask = AlphaIsMask();
    if ((m_info.mask_flags & GMF_PER_DATASET) && !m_mask)
        m_mask.reset(new GridstoreMaskBand(this, 0));
    for (auto &overview : m_overviews)
        if (overview)
            overview->RefreshInfo();
}

bool GridstoreDataset::SettingsGoToStore() const
{
    return eAccess == GA_Update && m_level == 0;
}

CPLErr GridstoreDataset::SetGeoTransform(double *transform)
{
    try
    {
        if (!SettingsGoToStore())
            return GDALPamDataset::SetGeoTransform(transform);
        if (gridstore_set_geotransform(m_store.get(), transform) != 0)
            return CE_Failure;
        RefreshInfo();
        return CE_None;
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_AppDefined, "GRIDSTORE: unexpected error setting the "
                                              "geotransform");
    }
    return CE_Failure;
}

CPLErr GridstoreDataset::SetSpatialRef(const OGRSpatialReference *srs)
{
    try
    {
        if (!SettingsGoToStore())
            return GDALPamDataset::SetSpatialRef(srs);
        // WKT2, as a CreateCopy source's CRS is kept: compound and vertical CRSs stay whole.
        char *wkt = nullptr;
        const char *const options[] = {"FORMAT=WKT2_2019", nullptr};
        if (srs != nullptr && !srs->IsEmpty() && srs->exportToWkt(&wkt, options) != OGRERR_NONE)
        {
            CPLFree(wkt);
            CPLError(CE_Failure, CPLE_AppDefined, "GRIDSTORE: the CRS cannot be written as WKT");
            return CE_Failure;
        }
        const int failed = gridstore_set_crs(m_store.get(), wkt ? wkt : "");
        CPLFree(wkt);
        if (failed)
            return CE_Failure;
        RefreshInfo();
        return CE_None;
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_AppDefined, "GRIDSTORE: unexpected error setting the CRS");
    }
    return CE_Failure;
}

CPLErr GridstoreDataset::StoreMetadata(char **next)
{
    if (gridstore_set_metadata(m_store.get(), next) != 0)
        return CE_Failure;
    RefreshInfo();
    return CE_None;
}

CPLErr GridstoreDataset::SetMetadata(char **metadata, const char *domain)
{
    try
    {
        const bool toStore = SettingsGoToStore() && m_info.creating && (!domain || !*domain);
        if (toStore && StoreMetadata(metadata) != CE_None)
            return CE_Failure;
        return GDALPamDataset::SetMetadata(metadata, domain);
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory setting metadata");
    }
    return CE_Failure;
}

CPLErr GridstoreDataset::SetMetadataItem(const char *name, const char *value,
                                         const char *domain)
{
    try
    {
        if (SettingsGoToStore() && m_info.creating && (!domain || !*domain))
        {
            CPLStringList next(CSLDuplicate(GetMetadata()), TRUE);
            next.SetNameValue(name, value);
            if (StoreMetadata(next.List()) != CE_None)
                return CE_Failure;
        }
        return GDALPamDataset::SetMetadataItem(name, value, domain);
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory setting metadata");
    }
    return CE_Failure;
}

int GridstoreDataset::LevelFactor(int level)
{
    return 1 << level;
}

CPLErr GridstoreDataset::IBuildOverviews(const char *, int overviewCount,
                                         const int *overviewList, int, const int *,
                                         GDALProgressFunc progress, void *progressData,
                                         CSLConstList)
{
    try
    {
        return CheckOverviewRequest(overviewCount, overviewList, progress, progressData);
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory checking levels");
    }
    return CE_Failure;
}

CPLErr GridstoreDataset::CheckOverviewRequest(int overviewCount, const int *overviewList,
                                              GDALProgressFunc progress, void *progressData)
{
    // gdaladdo, QGIS's "Build pyramids": the store's levels are its own, made and kept up
    // to date by every write. Asking for ones it has succeeds at once; anything else is
    // refused, since reporting success while building nothing would mislead.
    const int top = m_info.level_count - 1;
    const CPLString has =
        top >= 1 ? CPLString().Printf("the store has levels 2..%d", LevelFactor(top))
                 : CPLString("the store is small enough to have no levels above full "
                             "resolution");
    if (overviewCount <= 0)
    {
        CPLError(CE_Failure, CPLE_NotSupported,
                 "GRIDSTORE: %s: a store's levels cannot be removed: they are part of the "
                 "store and every write keeps them up to date (%s)",
                 GetDescription(), has.c_str());
        return CE_Failure;
    }
    CPLString missing;
    for (int i = 0; i < overviewCount; i++)
    {
        bool exists = false;
        for (int level = 1; level <= top && !exists; level++)
            exists = overviewList[i] == LevelFactor(level);
        if (!exists)
            missing += CPLString().Printf("%s%d", missing.empty() ? "" : ", ", overviewList[i]);
    }
    if (!missing.empty())
    {
        CPLError(CE_Failure, CPLE_NotSupported,
                 "GRIDSTORE: %s: cannot build overview level(s) %s: levels are built by every "
                 "write; %s. Nothing was done",
                 GetDescription(), missing.c_str(), has.c_str());
        return CE_Failure;
    }
    if (progress)
        progress(1.0, nullptr, progressData);
    return CE_None;
}

bool GridstoreDataset::AlphaIsMask()
{
    // In a time view the bands are time steps of one variable, none the alpha of others.
    if ((nBands != 2 && nBands != 4) || m_info.masks_per_band)
        return false;
    GDALRasterBand *alpha = GetRasterBand(nBands);
    const GDALDataType type = alpha->GetRasterDataType();
    return alpha->GetColorInterpretation() == GCI_AlphaBand &&
           (type == GDT_Byte || type == GDT_UInt16);
}

bool GridstoreDataset::RefuseOverviewWrite()
{
    if (m_level == 0)
        return false;
    CPLError(CE_Failure, CPLE_NotSupported,
             "GRIDSTORE: data can only be written at the base level (full resolution); "
             "the overviews are aggregation levels recomputed from it on every write");
    return true;
}

CPLErr GridstoreDataset::WriteBlock(int blockX, int blockY, int band, const void *image)
{
    if (RefuseOverviewWrite())
        return CE_Failure;
    if (eAccess != GA_Update)
    {
        CPLError(CE_Failure, CPLE_NoWriteAccess,
                 "GRIDSTORE: the store was opened read-only; open it in update mode to write");
        return CE_Failure;
    }
    int x, y, w, h;
    BlockWindow(blockX, blockY, x, y, w, h);
    return gridstore_write_block(m_store.get(), band, x, y, w, h, image, m_info.tile_size) == 0
               ? CE_None
               : CE_Failure;
}

bool GridstoreDataset::WritesDirectly(GDALRWFlag rw, int w, int h, int bufW, int bufH) const
{
    return rw == GF_Write && SettingsGoToStore() && w == bufW && h == bufH;
}

CPLErr GridstoreDataset::IRasterIO(GDALRWFlag rw, int x, int y, int w, int h, void *data,
                                   int bufW, int bufH, GDALDataType bufType, int bandCount,
                                   int *bandMap, GSpacing pixelSpace, GSpacing lineSpace,
                                   GSpacing bandSpace, GDALRasterIOExtraArg *extra)
{
    if (WritesDirectly(rw, w, h, bufW, bufH))
        return BandBasedRasterIO(rw, x, y, w, h, data, bufW, bufH, bufType, bandCount, bandMap,
                                 pixelSpace, lineSpace, bandSpace, extra);
    if (ReadsWindowDirectly(rw, w, h, bufW, bufH, bandCount))
    {
        try
        {
            return ReadWindow(x, y, w, h, data, bufType, bandCount, bandMap, pixelSpace,
                              lineSpace, bandSpace);
        }
        catch (...)
        {
            CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory reading a window");
            return CE_Failure;
        }
    }
    return GDALPamDataset::IRasterIO(rw, x, y, w, h, data, bufW, bufH, bufType, bandCount,
                                     bandMap, pixelSpace, lineSpace, bandSpace, extra);
}

bool GridstoreDataset::ReadsWindowDirectly(GDALRWFlag rw, int w, int h, int bufW, int bufH,
                                           int bandCount) const
{
    const GIntBig block = static_cast<GIntBig>(m_info.tile_size) * m_info.tile_size;
    return rw == GF_Read && eAccess == GA_ReadOnly && w == bufW && h == bufH &&
           bandCount > m_info.bands_per_read && static_cast<GIntBig>(w) * h <= block;
}

CPLErr GridstoreDataset::ReadWindow(int x, int y, int w, int h, void *data,
                                    GDALDataType bufType, int bandCount, const int *bandMap,
                                    GSpacing pixelSpace, GSpacing lineSpace, GSpacing bandSpace)
{
    const GDALDataType type = static_cast<GDALDataType>(m_info.data_type);
    const int size = GDALGetDataTypeSizeBytes(type);
    const size_t plane = static_cast<size_t>(w) * h * size;
    // Bands in batches, so that the store-typed copy stays small whatever the band count.
    const int batch = static_cast<int>(std::max<size_t>(1, (64u << 20) / plane));
    std::vector<GByte> planes;
    std::vector<void *> pointers;
    for (int start = 0; start < bandCount; start += batch)
    {
        const int n = std::min(batch, bandCount - start);
        planes.resize(plane * n);
        pointers.resize(n);
        for (int i = 0; i < n; i++)
            pointers[i] = planes.data() + plane * i;
        if (gridstore_read_window(m_store.get(), m_level, x, y, w, h, n, bandMap + start,
                                  pointers.data()) != 0)
            return CE_Failure;
        for (int i = 0; i < n; i++)
        {
            GByte *out = static_cast<GByte *>(data) + (start + i) * bandSpace;
            for (int row = 0; row < h; row++)
                GDALCopyWords64(planes.data() + plane * i + static_cast<size_t>(row) * w * size,
                                type, size, out + row * lineSpace, bufType,
                                static_cast<int>(pixelSpace), w);
        }
    }
    return CE_None;
}

CPLErr GridstoreDataset::WriteWindow(int band, int x, int y, int w, int h, const void *data,
                                     GDALDataType bufType, GSpacing pixelSpace,
                                     GSpacing lineSpace)
{
    // Blocks of this window that GDAL's cache holds go first (a dirty one is written), so
    // that none can later overwrite what is written here, or be read back stale.
    GDALRasterBand *target = GetRasterBand(band);
    const int bs = m_info.tile_size;
    for (int by = y / bs; by <= (y + h - 1) / bs; by++)
        for (int bx = x / bs; bx <= (x + w - 1) / bs; bx++)
        {
            GDALRasterBlock *cached = target->TryGetLockedBlockRef(bx, by);
            if (cached == nullptr)
                continue;
            cached->DropLock();
            if (target->FlushBlock(bx, by, TRUE) != CE_None)
                return CE_Failure;
        }
    const GDALDataType type = target->GetRasterDataType();
    const int size = GDALGetDataTypeSizeBytes(type);
    if (bufType == type && pixelSpace == size && lineSpace % size == 0 &&
        lineSpace / size >= w && lineSpace / size <= INT_MAX)
        return gridstore_write_block(m_store.get(), band, x, y, w, h, data,
                                     static_cast<int>(lineSpace / size)) == 0
                   ? CE_None
                   : CE_Failure;
    // Another type or spacing: converted a strip of rows at a time.
    const int rows = std::max(1, std::min(h, static_cast<int>((16 << 20) / (GIntBig(w) * size))));
    std::vector<GByte> strip(static_cast<size_t>(rows) * w * size);
    for (int r = 0; r < h; r += rows)
    {
        const int n = std::min(rows, h - r);
        for (int i = 0; i < n; i++)
            GDALCopyWords64(static_cast<const GByte *>(data) + (r + i) * lineSpace, bufType,
                            static_cast<int>(pixelSpace), strip.data() + static_cast<size_t>(i) * w * size,
                            type, size, w);
        if (gridstore_write_block(m_store.get(), band, x, y + r, w, n, strip.data(), w) != 0)
            return CE_Failure;
    }
    return CE_None;
}

CPLErr GridstoreDataset::GetGeoTransform(double *transform)
{
    if (!m_info.has_geotransform)
        return GDALPamDataset::GetGeoTransform(transform);
    memcpy(transform, m_info.geotransform, sizeof(double) * 6);
    const double f = static_cast<double>(1 << m_level);
    transform[1] *= f;
    transform[2] *= f;
    transform[4] *= f;
    transform[5] *= f;
    return CE_None;
}

const OGRSpatialReference *GridstoreDataset::GetSpatialRef() const
{
    try
    {
        if (!m_srs)
        {
            m_srs.reset(new OGRSpatialReference());
            m_srs->SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
            const char *wkt = gridstore_crs_wkt(m_store.get());
            if (wkt && wkt[0] && m_srs->importFromWkt(wkt) != OGRERR_NONE)
                CPLError(CE_Warning, CPLE_AppDefined,
                         "GRIDSTORE: the store's CRS could not be parsed");
        }
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory reading the CRS");
        return nullptr;
    }
    return m_srs->IsEmpty() ? GDALPamDataset::GetSpatialRef() : m_srs.get();
}

void GridstoreDataset::BlockWindow(int blockX, int blockY, int &x, int &y, int &w, int &h) const
{
    const int bs = m_info.tile_size;
    x = blockX * bs;
    y = blockY * bs;
    w = std::min(bs, nRasterXSize - x);
    h = std::min(bs, nRasterYSize - y);
}

void GridstoreDataset::ReadGroup(int band, int &first, int &last) const
{
    const int per = std::max(1, m_info.bands_per_read);
    first = (band - 1) / per * per + 1;
    last = std::min(nBands, first + per - 1);
}

CPLErr GridstoreDataset::ReadBlocks(const std::vector<std::pair<int, int>> &blocks, int band,
                                    void *image)
{
    // For each block, the destination of every band read with `band`: `image` for the
    // requested band, a freshly locked cache block for the others (none if already cached).
    int first, last;
    ReadGroup(band, first, last);
    std::vector<int> xs, ys, ws, hs;
    std::vector<void *> targets;
    std::vector<GDALRasterBlock *> locked;
    std::vector<std::pair<int, std::pair<int, int>>> lockedAt;  // band, block
    for (const auto &blk : blocks)
    {
        int x, y, w, h;
        BlockWindow(blk.first, blk.second, x, y, w, h);
        xs.push_back(x);
        ys.push_back(y);
        ws.push_back(w);
        hs.push_back(h);
        for (int b = first; b <= last; b++)
        {
            if (b == band && image != nullptr)
            {
                targets.push_back(image);
                continue;
            }
            GDALRasterBand *other = GetRasterBand(b);
            GDALRasterBlock *cached = other->TryGetLockedBlockRef(blk.first, blk.second);
            if (cached != nullptr)
            {
                cached->DropLock();
                targets.push_back(nullptr);
                continue;
            }
            GDALRasterBlock *fresh = other->GetLockedBlockRef(blk.first, blk.second, TRUE);
            targets.push_back(fresh ? fresh->GetDataRef() : nullptr);
            if (fresh)
            {
                locked.push_back(fresh);
                lockedAt.push_back({b, blk});
            }
        }
    }
    const bool ok =
        gridstore_read_blocks(m_store.get(), m_level, first, last - first + 1,
                              static_cast<int>(blocks.size()), xs.data(), ys.data(), ws.data(),
                              hs.data(), targets.data(), m_info.tile_size) == 0;
    for (size_t i = 0; i < locked.size(); i++)
    {
        locked[i]->DropLock();
        // A block that was not filled must not stay in the cache.
        if (!ok)
            GetRasterBand(lockedAt[i].first)
                ->FlushBlock(lockedAt[i].second.first, lockedAt[i].second.second, FALSE);
    }
    return ok ? CE_None : CE_Failure;
}

CPLErr GridstoreDataset::ReadBlock(int blockX, int blockY, int band, void *image)
{
    try
    {
        return ReadBlocks({{blockX, blockY}}, band, image);
    }
    catch (const std::bad_alloc &)
    {
        CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory reading a block");
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_AppDefined, "GRIDSTORE: unexpected error reading a block");
    }
    return CE_Failure;
}

void GridstoreDataset::PrefetchBlocks(int band, int x, int y, int w, int h)
{
    if (m_info.read_threads < 2 || w <= 0 || h <= 0)
        return;
    const int bs = m_info.tile_size;
    std::vector<std::pair<int, int>> missing;
    for (int by = y / bs; by <= (y + h - 1) / bs; by++)
        for (int bx = x / bs; bx <= (x + w - 1) / bs; bx++)
        {
            GDALRasterBlock *cached = GetRasterBand(band)->TryGetLockedBlockRef(bx, by);
            if (cached != nullptr)
                cached->DropLock();
            else
                missing.push_back({bx, by});
        }
    // Few blocks on disk decode faster one by one than by waking worker threads; over
    // the network, where each block costs a request, they come faster together.
    if (missing.size() < static_cast<size_t>(std::max(1, m_info.min_parallel_blocks)))
        return;
    // Batches of a few blocks per thread keep the number of locked blocks small.
    const size_t batch = static_cast<size_t>(m_info.read_threads) * 4;
    for (size_t start = 0; start < missing.size(); start += batch)
    {
        std::vector<std::pair<int, int>> part(
            missing.begin() + start, missing.begin() + std::min(missing.size(), start + batch));
        // No image: every band read with `band` goes to the cache. An error is left to
        // the plain block path, which reports it for its own block.
        if (ReadBlocks(part, band, nullptr) != CE_None)
        {
            CPLErrorReset();
            return;
        }
    }
}

CPLErr GridstoreDataset::ReadMaskBlock(int band, int blockX, int blockY, void *image)
{
    try
    {
        int x, y, w, h;
        BlockWindow(blockX, blockY, x, y, w, h);
        std::vector<GByte> mask(static_cast<size_t>(w) * h);
        // The dataset's mask is that of any band: they are all read together.
        if (gridstore_read_mask(m_store.get(), m_level, band > 0 ? band : 1, x, y, w, h,
                                mask.data()) != 0)
            return CE_Failure;
        CopyPlane(mask.data(), 0, w, h, 1, m_info.tile_size, image);
        return CE_None;
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory reading a mask block");
    }
    return CE_Failure;
}

/************************************************************************/
/*                             GridstoreBand                            */
/************************************************************************/

GridstoreBand::GridstoreBand(GridstoreDataset *ds, int band)
{
    poDS = ds;
    nBand = band;
    eDataType = static_cast<GDALDataType>(ds->m_info.data_type);
    nBlockXSize = ds->m_info.tile_size;
    nBlockYSize = ds->m_info.tile_size;
    nRasterXSize = ds->nRasterXSize;
    nRasterYSize = ds->nRasterYSize;
    gridstore_band_info(ds->m_store.get(), band - 1, &m_info);
    GDALMajorObject::SetDescription(m_info.description ? m_info.description : "");
    if (ds->m_level == 0)
        GDALMajorObject::SetMetadata(m_info.metadata);
    else
        GDALMajorObject::SetMetadataItem("RESAMPLING", m_info.resampling);
    LoadColorTable();
    if (ds->m_info.masks_per_band && !m_info.has_nodata && ds->m_info.mask_flags != GMF_ALL_VALID)
        m_ownMask.reset(new GridstoreMaskBand(ds, band));
}

void GridstoreBand::LoadColorTable()
{
    m_colorTable.reset();
    if (m_info.color_table_size <= 0)
        return;
    m_colorTable.reset(new GDALColorTable(static_cast<GDALPaletteInterp>(m_info.palette_interp)));
    for (int i = 0; i < m_info.color_table_size; i++)
    {
        const GDALColorEntry e = {m_info.color_table[4 * i], m_info.color_table[4 * i + 1],
                                  m_info.color_table[4 * i + 2], m_info.color_table[4 * i + 3]};
        m_colorTable->SetColorEntry(i, &e);
    }
}

void GridstoreBand::Refresh()
{
    auto *ds = static_cast<GridstoreDataset *>(poDS);
    gridstore_band_info(ds->m_store.get(), nBand - 1, &m_info);
    if (ds->m_level > 0)
        GDALMajorObject::SetMetadataItem("RESAMPLING", m_info.resampling);
    LoadColorTable();
}

bool GridstoreBand::SettingsGoToStore() const
{
    return static_cast<GridstoreDataset *>(poDS)->SettingsGoToStore();
}

bool GridstoreBand::Creating() const
{
    return SettingsGoToStore() && static_cast<GridstoreDataset *>(poDS)->m_info.creating;
}

CPLErr GridstoreBand::StoreSettings(const GsBandInfo &next)
{
    auto *ds = static_cast<GridstoreDataset *>(poDS);
    if (gridstore_set_band(ds->m_store.get(), nBand - 1, &next) != 0)
        return CE_Failure;
    ds->RefreshInfo();
    return CE_None;
}

// Each setter copies the band's settings, changes one, and hands them to the store. The
// strings they point to live until the call returns.

CPLErr GridstoreBand::SetNoDataValue(double value)
{
    if (!SettingsGoToStore())
        return GDALPamRasterBand::SetNoDataValue(value);
    GsBandInfo next = m_info;
    next.has_nodata = 1;
    next.nodata = value;
    return StoreSettings(next);
}

CPLErr GridstoreBand::DeleteNoDataValue()
{
    if (!SettingsGoToStore())
        return GDALPamRasterBand::DeleteNoDataValue();
    GsBandInfo next = m_info;
    next.has_nodata = 0;
    return StoreSettings(next);
}

CPLErr GridstoreBand::SetColorInterpretation(GDALColorInterp interp)
{
    if (!SettingsGoToStore())
        return GDALPamRasterBand::SetColorInterpretation(interp);
    GsBandInfo next = m_info;
    next.color_interp = GDALGetColorInterpretationName(interp);
    return StoreSettings(next);
}

CPLErr GridstoreBand::SetColorTable(GDALColorTable *table)
{
    if (!SettingsGoToStore())
        return GDALPamRasterBand::SetColorTable(table);
    try
    {
        std::vector<short> entries;
        GsBandInfo next = m_info;
        next.color_table_size = 0;
        next.color_table = nullptr;
        if (table != nullptr)
        {
            for (int i = 0; i < table->GetColorEntryCount(); i++)
            {
                const GDALColorEntry *e = table->GetColorEntry(i);
                entries.insert(entries.end(), {e->c1, e->c2, e->c3, e->c4});
            }
            next.color_table_size = table->GetColorEntryCount();
            next.color_table = entries.data();
            next.palette_interp = table->GetPaletteInterpretation();
        }
        // A band with a colour table is a palette band, as GTiff makes it; losing its table
        // makes it grey again.
        const GDALColorInterp interp = GetColorInterpretation();
        if (table != nullptr && (interp == GCI_GrayIndex || interp == GCI_Undefined))
            next.color_interp = GDALGetColorInterpretationName(GCI_PaletteIndex);
        else if (table == nullptr && interp == GCI_PaletteIndex)
            next.color_interp = GDALGetColorInterpretationName(GCI_GrayIndex);
        return StoreSettings(next);
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory setting a colour table");
    }
    return CE_Failure;
}

CPLErr GridstoreBand::SetUnitType(const char *unit)
{
    if (!SettingsGoToStore())
        return GDALPamRasterBand::SetUnitType(unit);
    GsBandInfo next = m_info;
    next.unit = unit ? unit : "";
    return StoreSettings(next);
}

CPLErr GridstoreBand::SetScale(double scale)
{
    if (!SettingsGoToStore())
        return GDALPamRasterBand::SetScale(scale);
    GsBandInfo next = m_info;
    next.has_scale = 1;
    next.scale = scale;
    return StoreSettings(next);
}

CPLErr GridstoreBand::SetOffset(double offset)
{
    if (!SettingsGoToStore())
        return GDALPamRasterBand::SetOffset(offset);
    GsBandInfo next = m_info;
    next.has_offset = 1;
    next.offset = offset;
    return StoreSettings(next);
}

void GridstoreBand::SetDescription(const char *description)
{
    try
    {
        if (Creating())
        {
            GsBandInfo next = m_info;
            next.description = description ? description : "";
            if (StoreSettings(next) != CE_None)
                return;
        }
        GDALPamRasterBand::SetDescription(description);
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory setting a description");
    }
}

CPLErr GridstoreBand::SetMetadata(char **metadata, const char *domain)
{
    try
    {
        if (Creating() && (!domain || !*domain))
        {
            GsBandInfo next = m_info;
            next.metadata = metadata;
            if (StoreSettings(next) != CE_None)
                return CE_Failure;
        }
        return GDALPamRasterBand::SetMetadata(metadata, domain);
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory setting metadata");
    }
    return CE_Failure;
}

CPLErr GridstoreBand::SetMetadataItem(const char *name, const char *value, const char *domain)
{
    try
    {
        if (Creating() && (!domain || !*domain))
        {
            CPLStringList next(CSLDuplicate(GetMetadata()), TRUE);
            next.SetNameValue(name, value);
            GsBandInfo settings = m_info;
            settings.metadata = next.List();
            if (StoreSettings(settings) != CE_None)
                return CE_Failure;
        }
        return GDALPamRasterBand::SetMetadataItem(name, value, domain);
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory setting metadata");
    }
    return CE_Failure;
}

CPLErr GridstoreBand::IReadBlock(int nBlockXOff, int nBlockYOff, void *pImage)
{
    return static_cast<GridstoreDataset *>(poDS)->ReadBlock(nBlockXOff, nBlockYOff, nBand,
                                                            pImage);
}

CPLErr GridstoreBand::IWriteBlock(int nBlockXOff, int nBlockYOff, void *pImage)
{
    try
    {
        return static_cast<GridstoreDataset *>(poDS)->WriteBlock(nBlockXOff, nBlockYOff, nBand,
                                                                 pImage);
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_AppDefined, "GRIDSTORE: unexpected error writing a block");
    }
    return CE_Failure;
}

CPLErr GridstoreBand::IRasterIO(GDALRWFlag eRWFlag, int nXOff, int nYOff, int nXSize,
                                int nYSize, void *pData, int nBufXSize, int nBufYSize,
                                GDALDataType eBufType, GSpacing nPixelSpace,
                                GSpacing nLineSpace, GDALRasterIOExtraArg *psExtraArg)
{
    // A write to an overview fails here, at the call, rather than later when GDAL's block
    // cache flushes it (when the caller may no longer be looking at errors).
    auto *ds = static_cast<GridstoreDataset *>(poDS);
    if (eRWFlag == GF_Write && ds->RefuseOverviewWrite())
        return CE_Failure;
    if (ds->WritesDirectly(eRWFlag, nXSize, nYSize, nBufXSize, nBufYSize))
    {
        try
        {
            return ds->WriteWindow(nBand, nXOff, nYOff, nXSize, nYSize, pData, eBufType,
                                   nPixelSpace, nLineSpace);
        }
        catch (...)
        {
            CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory writing a window");
            return CE_Failure;
        }
    }
    // A small window of one time step (gdallocationinfo, a pixel's value) decodes only
    // the part of the chunk it meets, not a whole block of it.
    if (ds->m_info.masks_per_band &&
        ds->ReadsWindowDirectly(eRWFlag, nXSize, nYSize, nBufXSize, nBufYSize, 2) &&
        GIntBig(nXSize) * nYSize * 16 <= GIntBig(nBlockXSize) * nBlockYSize)
    {
        try
        {
            return ds->ReadWindow(nXOff, nYOff, nXSize, nYSize, pData, eBufType, 1, &nBand,
                                  nPixelSpace, nLineSpace, 0);
        }
        catch (...)
        {
            CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory reading a window");
            return CE_Failure;
        }
    }
    // Only full-resolution reads go block by block; downsampled ones go to an overview.
    if (eRWFlag == GF_Read && nBufXSize == nXSize && nBufYSize == nYSize)
    {
        try
        {
            static_cast<GridstoreDataset *>(poDS)->PrefetchBlocks(nBand, nXOff, nYOff, nXSize,
                                                                  nYSize);
        }
        catch (...)
        {
            // The prefetch is an optimisation; the plain path below still reads everything.
        }
    }
    return GDALPamRasterBand::IRasterIO(eRWFlag, nXOff, nYOff, nXSize, nYSize, pData,
                                        nBufXSize, nBufYSize, eBufType, nPixelSpace,
                                        nLineSpace, psExtraArg);
}

double GridstoreBand::GetNoDataValue(int *pbSuccess)
{
    if (pbSuccess)
        *pbSuccess = m_info.has_nodata;
    return m_info.has_nodata ? m_info.nodata : 0.0;
}

GDALColorInterp GridstoreBand::GetColorInterpretation()
{
    return GDALGetColorInterpretationByName(m_info.color_interp);
}

GDALColorTable *GridstoreBand::GetColorTable()
{
    return m_colorTable.get();
}

double GridstoreBand::GetOffset(int *pbSuccess)
{
    if (pbSuccess)
        *pbSuccess = m_info.has_offset;
    return m_info.offset;
}

double GridstoreBand::GetScale(int *pbSuccess)
{
    if (pbSuccess)
        *pbSuccess = m_info.has_scale;
    return m_info.scale;
}

const char *GridstoreBand::GetUnitType()
{
    return m_info.unit ? m_info.unit : "";
}

int GridstoreBand::GetOverviewCount()
{
    return static_cast<int>(static_cast<GridstoreDataset *>(poDS)->m_overviews.size());
}

GDALRasterBand *GridstoreBand::GetOverview(int i)
{
    auto *ds = static_cast<GridstoreDataset *>(poDS);
    auto &overviews = ds->m_overviews;
    if (i < 0 || i >= static_cast<int>(overviews.size()))
        return nullptr;
    if (!overviews[i])
    {
        try
        {
            overviews[i].reset(new GridstoreDataset(ds->m_store, i + 1, ds->GetAccess()));
        }
        catch (...)
        {
            CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: cannot open overview %d", i);
            return nullptr;
        }
    }
    return overviews[i]->GetRasterBand(nBand);
}

// Bands with nodata, and the bands of an RGBA or gray+alpha store, take GDAL's own mask
// logic, so their flags are what GTiff reports for the same bands: GMF_NODATA; or
// GMF_ALPHA | GMF_PER_DATASET with the alpha band as mask, and GMF_ALL_VALID for the alpha
// band itself. Other bands without nodata have the store's per-dataset validity mask.
int GridstoreBand::GetMaskFlags()
{
    auto *ds = static_cast<GridstoreDataset *>(poDS);
    if (m_info.has_nodata || ds->m_alphaIsMask)
        return GDALPamRasterBand::GetMaskFlags();
    return ds->m_info.mask_flags;
}

GDALRasterBand *GridstoreBand::GetMaskBand()
{
    auto *ds = static_cast<GridstoreDataset *>(poDS);
    if (m_ownMask)
        return m_ownMask.get();
    if (!m_info.has_nodata && !ds->m_alphaIsMask && ds->m_mask)
        return ds->m_mask.get();
    return GDALPamRasterBand::GetMaskBand();
}

/************************************************************************/
/*                           GridstoreMaskBand                          */
/************************************************************************/

GridstoreMaskBand::GridstoreMaskBand(GridstoreDataset *ds, int band) : m_of(band)
{
    poDS = ds;
    nBand = 0;
    eDataType = GDT_Byte;
    nBlockXSize = ds->m_info.tile_size;
    nBlockYSize = ds->m_info.tile_size;
    nRasterXSize = ds->nRasterXSize;
    nRasterYSize = ds->nRasterYSize;
}

CPLErr GridstoreMaskBand::IReadBlock(int nBlockXOff, int nBlockYOff, void *pImage)
{
    return static_cast<GridstoreDataset *>(poDS)->ReadMaskBlock(m_of, nBlockXOff, nBlockYOff,
                                                                pImage);
}
