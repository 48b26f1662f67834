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

GridstoreDataset::GridstoreDataset(std::shared_ptr<GsStore> store, int level)
    : m_store(std::move(store)), m_level(level)
{
    gridstore_dataset_info(m_store.get(), &m_info);
    gridstore_level_size(m_store.get(), level, &nRasterXSize, &nRasterYSize);
    m_srs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    const char *wkt = gridstore_crs_wkt(m_store.get());
    if (wkt && wkt[0])
        m_srs.importFromWkt(wkt);
    for (int b = 1; b <= m_info.band_count; b++)
        SetBand(b, new GridstoreBand(this, b));
    if (m_info.mask_flags & GMF_PER_DATASET)
        m_mask.reset(new GridstoreMaskBand(this));
    if (level == 0)
    {
        // Metadata set through the base class does not mark the PAM file dirty: it comes
        // from the store, not from the user.
        GDALDataset::SetMetadata(gridstore_metadata(m_store.get(), ""));
        GDALDataset::SetMetadata(gridstore_metadata(m_store.get(), "IMAGE_STRUCTURE"),
                                 "IMAGE_STRUCTURE");
        for (int z = 1; z < m_info.level_count; z++)
            m_overviews.emplace_back(new GridstoreDataset(m_store, z));
    }
}

GridstoreDataset::~GridstoreDataset()
{
    FlushCache(true);
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
    return m_srs.IsEmpty() ? GDALPamDataset::GetSpatialRef() : &m_srs;
}

void GridstoreDataset::BlockWindow(int blockX, int blockY, int &x, int &y, int &w, int &h) const
{
    const int bs = m_info.tile_size;
    x = blockX * bs;
    y = blockY * bs;
    w = std::min(bs, nRasterXSize - x);
    h = std::min(bs, nRasterYSize - y);
}

CPLErr GridstoreDataset::ReadBlock(int blockX, int blockY, int band, void *image)
{
    try
    {
        int x, y, w, h;
        BlockWindow(blockX, blockY, x, y, w, h);
        const int dataSize = GDALGetDataTypeSizeBytes(static_cast<GDALDataType>(m_info.data_type));
        m_scratch.resize(static_cast<size_t>(w) * h * dataSize * nBands);
        if (gridstore_read(m_store.get(), m_level, x, y, w, h, m_scratch.data(), nullptr) != 0)
            return CE_Failure;
        const int bs = m_info.tile_size;
        for (int b = 1; b <= nBands; b++)
        {
            if (b == band)
            {
                CopyPlane(m_scratch.data(), b - 1, w, h, dataSize, bs, image);
                continue;
            }
            GDALRasterBand *other = GetRasterBand(b);
            GDALRasterBlock *block = other->TryGetLockedBlockRef(blockX, blockY);
            if (block != nullptr)
            {
                block->DropLock();  // already cached
                continue;
            }
            block = other->GetLockedBlockRef(blockX, blockY, TRUE);
            if (block == nullptr)
                continue;  // no room in the cache: the band reads the block itself later
            CopyPlane(m_scratch.data(), b - 1, w, h, dataSize, bs, block->GetDataRef());
            block->DropLock();
        }
        return CE_None;
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
    auto &overviews = static_cast<GridstoreDataset *>(poDS)->m_overviews;
    if (i < 0 || i >= static_cast<int>(overviews.size()))
        return nullptr;
    return overviews[i]->GetRasterBand(nBand);
}

int GridstoreBand::GetMaskFlags()
{
    if (m_info.has_nodata)
        return GDALPamRasterBand::GetMaskFlags();
    return static_cast<GridstoreDataset *>(poDS)->m_info.mask_flags;
}

GDALRasterBand *GridstoreBand::GetMaskBand()
{
    auto *ds = static_cast<GridstoreDataset *>(poDS);
    if (!m_info.has_nodata && ds->m_mask)
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
