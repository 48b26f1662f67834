#include "gridstore_dataset.h"

#include <algorithm>
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
        m_mask.reset(new GridstoreMaskBand(this));
    if (level == 0)
    {
        // Metadata set through the base class does not mark the PAM file dirty: it comes
        // from the store, not from the user.
        GDALDataset::SetMetadata(gridstore_metadata(m_store.get(), ""));
        GDALDataset::SetMetadata(gridstore_metadata(m_store.get(), "IMAGE_STRUCTURE"),
                                 "IMAGE_STRUCTURE");
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
        if (eAccess == GA_Update && m_level == 0 && gridstore_flush(m_store.get()) == 0)
            ForgetStatistics();
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
    if (nBands != 2 && nBands != 4)
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

CPLErr GridstoreDataset::ReadBlocks(const std::vector<std::pair<int, int>> &blocks, int band,
                                    void *image)
{
    // For each block, the destination of every band: `image` for the requested band, a
    // freshly locked cache block for the others (none if already cached).
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
        for (int b = 1; b <= nBands; b++)
        {
            if (b == band)
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
    const bool ok = gridstore_read_blocks(m_store.get(), m_level, static_cast<int>(blocks.size()),
                                          xs.data(), ys.data(), ws.data(), hs.data(),
                                          targets.data(), m_info.tile_size) == 0;
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

void GridstoreDataset::PrefetchBlocks(int x, int y, int w, int h)
{
    if (m_info.read_threads < 2 || w <= 0 || h <= 0)
        return;
    const int bs = m_info.tile_size;
    std::vector<std::pair<int, int>> missing;
    for (int by = y / bs; by <= (y + h - 1) / bs; by++)
        for (int bx = x / bs; bx <= (x + w - 1) / bs; bx++)
        {
            GDALRasterBlock *cached = GetRasterBand(1)->TryGetLockedBlockRef(bx, by);
            if (cached != nullptr)
                cached->DropLock();
            else
                missing.push_back({bx, by});
        }
    // Few blocks decode faster one by one than by waking worker threads.
    if (missing.size() < kMinPrefetchBlocks)
        return;
    // Batches of a few blocks per thread keep the number of locked blocks small.
    const size_t batch = static_cast<size_t>(m_info.read_threads) * 4;
    for (size_t start = 0; start < missing.size(); start += batch)
    {
        std::vector<std::pair<int, int>> part(
            missing.begin() + start, missing.begin() + std::min(missing.size(), start + batch));
        // Band 0 means no band is the caller's: every band goes to the cache. An error
        // is left to the plain block path, which reports it for its own block.
        if (ReadBlocks(part, 0, nullptr) != CE_None)
        {
            CPLErrorReset();
            return;
        }
    }
}

CPLErr GridstoreDataset::ReadMaskBlock(int blockX, int blockY, void *image)
{
    try
    {
        int x, y, w, h;
        BlockWindow(blockX, blockY, x, y, w, h);
        std::vector<GByte> mask(static_cast<size_t>(w) * h);
        if (gridstore_read(m_store.get(), m_level, x, y, w, h, nullptr, mask.data()) != 0)
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
    if (m_info.color_table_size > 0)
    {
        m_colorTable.reset(
            new GDALColorTable(static_cast<GDALPaletteInterp>(m_info.palette_interp)));
        for (int i = 0; i < m_info.color_table_size; i++)
        {
            const GDALColorEntry e = {m_info.color_table[4 * i], m_info.color_table[4 * i + 1],
                                      m_info.color_table[4 * i + 2],
                                      m_info.color_table[4 * i + 3]};
            m_colorTable->SetColorEntry(i, &e);
        }
    }
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
    if (eRWFlag == GF_Write && static_cast<GridstoreDataset *>(poDS)->RefuseOverviewWrite())
        return CE_Failure;
    // Only full-resolution reads go block by block; downsampled ones go to an overview.
    if (eRWFlag == GF_Read && nBufXSize == nXSize && nBufYSize == nYSize)
    {
        try
        {
            static_cast<GridstoreDataset *>(poDS)->PrefetchBlocks(nXOff, nYOff, nXSize, nYSize);
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
    if (!m_info.has_nodata && !ds->m_alphaIsMask && ds->m_mask)
        return ds->m_mask.get();
    return GDALPamRasterBand::GetMaskBand();
}

/************************************************************************/
/*                           GridstoreMaskBand                          */
/************************************************************************/

GridstoreMaskBand::GridstoreMaskBand(GridstoreDataset *ds)
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
    return static_cast<GridstoreDataset *>(poDS)->ReadMaskBlock(nBlockXOff, nBlockYOff, pImage);
}
