// The multidimensional view of a store (see gridstore_mdim.h). Every method GDAL calls
// catches every C++ exception; the Rust side reports its own failures.

#include "gridstore_mdim.h"

#include <algorithm>
#include <climits>
#include <new>

#include "ogr_spatialref.h"

namespace
{
// The most bytes of store-typed samples one read holds before they are copied into the
// caller's buffer: requests larger than this are read in parts. The configuration option
// GRIDSTORE_MDIM_READ_BYTES changes it (at least 1 sample, at most 1 GiB, which is all the
// store reads at once).
size_t MaxReadBytes()
{
    const char *value = CPLGetConfigOption("GRIDSTORE_MDIM_READ_BYTES", nullptr);
    if (value == nullptr)
        return 64u << 20;
    const GIntBig bytes = CPLAtoGIntBig(value);
    return static_cast<size_t>(std::min<GIntBig>(std::max<GIntBig>(bytes, 1), 1 << 30));
}

const char *const kRoot = "/";

std::shared_ptr<GDALAttribute> Text(const std::string &parent, const char *name,
                                    const std::string &value)
{
    return std::make_shared<GDALAttributeString>(parent, name, value);
}

// The first index and the number of indices a request along one dimension spans:
// `count` indices from `start`, `step` apart (a step may be 0 or negative).
void Span(GUInt64 start, size_t count, GInt64 step, GUInt64 &first, GUInt64 &span)
{
    const GUInt64 reach = static_cast<GUInt64>(count - 1) *
                          static_cast<GUInt64>(step < 0 ? -step : step);
    first = step < 0 ? start - reach : start;
    span = reach + 1;
}

// How many of `count` indices, `step` apart, fit in a span of at most `budget` indices
// (at least one).
size_t FitCount(size_t count, GInt64 step, GUInt64 budget)
{
    const GUInt64 a = static_cast<GUInt64>(step < 0 ? -step : step);
    if (a == 0 || count <= 1)
        return count;
    const GUInt64 fit = (std::max<GUInt64>(budget, 1) - 1) / a + 1;
    return static_cast<size_t>(std::min<GUInt64>(count, fit));
}
}  // namespace

/************************************************************************/
/*                         GridstoreMdimStore                           */
/************************************************************************/

GridstoreMdimStore::GridstoreMdimStore(GsMdim *h, const std::string &name)
    : handle(h), filename(name)
{
    gridstore_mdim_info(handle, &info);
}

GridstoreMdimStore::~GridstoreMdimStore()
{
    gridstore_mdim_close(handle);
}

/************************************************************************/
/*                        GridstoreMdimDataset                          */
/************************************************************************/

GDALDataset *GridstoreMdimDataset::Open(GDALOpenInfo *info)
{
    try
    {
        if (info->eAccess == GA_Update)
        {
            CPLError(CE_Failure, CPLE_NotSupported,
                     "GRIDSTORE: %s: the multidimensional view is read-only; add or replace "
                     "time steps with `gridstore append` or `gdal_translate -co TIME=`",
                     info->pszFilename);
            return nullptr;
        }
        GsMdim *raw = gridstore_mdim_open(info->pszFilename, info->papszOpenOptions);
        if (raw == nullptr)
            return nullptr;
        std::shared_ptr<GridstoreMdimStore> store;
        try
        {
            store = std::make_shared<GridstoreMdimStore>(raw, info->pszFilename);
        }
        catch (...)
        {
            gridstore_mdim_close(raw);
            throw;
        }
        auto root = GridstoreMdimGroup::Create(store);
        if (!root)
            return nullptr;
        std::unique_ptr<GridstoreMdimDataset> ds(new GridstoreMdimDataset());
        ds->m_root = root;
        ds->SetDescription(info->pszFilename);
        return ds.release();
    }
    catch (const std::bad_alloc &)
    {
        CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory opening %s",
                 info->pszFilename);
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_AppDefined, "GRIDSTORE: unexpected error opening %s",
                 info->pszFilename);
    }
    return nullptr;
}

/************************************************************************/
/*                         GridstoreMdimGroup                           */
/************************************************************************/

GridstoreMdimGroup::GridstoreMdimGroup() : GDALGroup("", kRoot)
{
}

std::shared_ptr<GridstoreMdimGroup> GridstoreMdimGroup::Create(
    const std::shared_ptr<GridstoreMdimStore> &store)
{
    std::shared_ptr<GridstoreMdimGroup> group(new GridstoreMdimGroup());
    const GsMdimInfo &info = store->info;
    if (info.has_time)
    {
        // As GDAL's netCDF driver shows a CF time axis: TEMPORAL, no direction.
        auto time = std::make_shared<GDALDimensionWeakIndexingVar>(
            kRoot, "time", GDAL_DIM_TYPE_TEMPORAL, "", info.time_count);
        auto values = GridstoreTimeArray::Create(store, time);
        time->SetIndexingVariable(values);
        group->m_dims.push_back(time);
        group->m_arrays.push_back(values);
    }
    std::unique_ptr<OGRSpatialReference> srs;
    if (info.crs_wkt != nullptr && info.crs_wkt[0] != '\0')
    {
        srs.reset(new OGRSpatialReference());
        if (srs->importFromWkt(info.crs_wkt) != OGRERR_NONE)
            srs.reset();
    }
    group->AddSpatialDimensions(info, srs.get());
    for (int a = 0; a < info.array_count; a++)
    {
        auto array = GridstoreVariableArray::Create(store, a, group->m_dims);
        if (!array)
            return nullptr;
        group->m_arrays.push_back(array);
    }
    return group;
}

void GridstoreMdimGroup::AddSpatialDimensions(const GsMdimInfo &info,
                                              const OGRSpatialReference *srs)
{
    const double *gt = info.geotransform;
    // The direction in which each index grows (stores are north-up); unknown on a pixel
    // grid without georeferencing.
    const bool known = info.has_geotransform != 0;
    auto y = std::make_shared<GDALDimensionWeakIndexingVar>(
        kRoot, "y", GDAL_DIM_TYPE_HORIZONTAL_Y, !known ? "" : gt[5] < 0 ? "SOUTH" : "NORTH",
        info.height);
    auto x = std::make_shared<GDALDimensionWeakIndexingVar>(
        kRoot, "x", GDAL_DIM_TYPE_HORIZONTAL_X, !known ? "" : gt[1] < 0 ? "WEST" : "EAST",
        info.width);
    m_dims.push_back(y);
    m_dims.push_back(x);
    // Pixel-centre coordinates, as the netCDF driver gives them; for a store without
    // georeferencing, those of its pixel grid. Writers need them: GDAL's Zarr writer
    // names no dimensions of an array whose dimensions have no indexing variable.
    auto yValues = GDALMDArrayRegularlySpaced::Create(kRoot, "y", y, gt[3], gt[5], 0.5);
    auto xValues = GDALMDArrayRegularlySpaced::Create(kRoot, "x", x, gt[0], gt[1], 0.5);
    const bool geographic = srs != nullptr && srs->IsGeographic();
    const std::string parentY = yValues->GetFullName(), parentX = xValues->GetFullName();
    if (geographic)
    {
        yValues->AddAttribute(Text(parentY, "standard_name", "latitude"));
        yValues->AddAttribute(Text(parentY, "units", "degrees_north"));
        xValues->AddAttribute(Text(parentX, "standard_name", "longitude"));
        xValues->AddAttribute(Text(parentX, "units", "degrees_east"));
    }
    else if (srs != nullptr && srs->IsProjected())
    {
        yValues->AddAttribute(Text(parentY, "standard_name", "projection_y_coordinate"));
        xValues->AddAttribute(Text(parentX, "standard_name", "projection_x_coordinate"));
    }
    y->SetIndexingVariable(yValues);
    x->SetIndexingVariable(xValues);
    m_arrays.push_back(yValues);
    m_arrays.push_back(xValues);
}

std::vector<std::string> GridstoreMdimGroup::GetMDArrayNames(CSLConstList) const
{
    std::vector<std::string> names;
    try
    {
        for (const auto &a : m_arrays)
            names.push_back(a->GetName());
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory listing arrays");
        names.clear();
    }
    return names;
}

std::shared_ptr<GDALMDArray> GridstoreMdimGroup::OpenMDArray(const std::string &name,
                                                             CSLConstList) const
{
    for (const auto &a : m_arrays)
        if (a->GetName() == name)
            return a;
    return nullptr;
}

std::vector<std::shared_ptr<GDALDimension>> GridstoreMdimGroup::GetDimensions(
    CSLConstList) const
{
    return m_dims;
}

/************************************************************************/
/*                         GridstoreTimeArray                           */
/************************************************************************/

GridstoreTimeArray::GridstoreTimeArray(const std::shared_ptr<GridstoreMdimStore> &store,
                                       const std::shared_ptr<GDALDimension> &dim)
    : GDALAbstractMDArray(kRoot, "time"), GDALMDArray(kRoot, "time"), m_store(store),
      m_dims{dim}, m_unit(store->info.time_units ? store->info.time_units : "")
{
    const std::string parent = GetFullName();
    m_attributes.push_back(Text(parent, "calendar", store->info.calendar));
    m_attributes.push_back(Text(parent, "standard_name", "time"));
    m_attributes.push_back(Text(parent, "axis", "T"));
}

std::shared_ptr<GridstoreTimeArray> GridstoreTimeArray::Create(
    const std::shared_ptr<GridstoreMdimStore> &store, const std::shared_ptr<GDALDimension> &dim)
{
    std::shared_ptr<GridstoreTimeArray> array(new GridstoreTimeArray(store, dim));
    array->SetSelf(array);
    return array;
}

bool GridstoreTimeArray::IRead(const GUInt64 *start, const size_t *count, const GInt64 *step,
                               const GPtrDiff_t *stride, const GDALExtendedDataType &bufferType,
                               void *buffer) const
{
    try
    {
        // The values spanned, in parts, then every step-th of them to the buffer.
        GUInt64 first = 0, span = 0;
        Span(start[0], count[0], step[0], first, span);
        const size_t part =
            FitCount(count[0], step[0], std::max<size_t>(MaxReadBytes() / sizeof(double), 1));
        std::vector<double> values;
        for (size_t i = 0; i < count[0]; i += part)
        {
            const size_t n = std::min(part, count[0] - i);
            GUInt64 lo = 0, len = 0;
            Span(start[0] + static_cast<GUInt64>(static_cast<GInt64>(i) * step[0]), n, step[0],
                 lo, len);
            values.resize(static_cast<size_t>(len));
            if (gridstore_mdim_time_values(m_store->handle, lo, len, values.data()) != 0)
                return false;
            const double *src = values.data() + (step[0] < 0 ? len - 1 : 0);
            GByte *dst = static_cast<GByte *>(buffer) +
                         static_cast<GPtrDiff_t>(i) * stride[0] *
                             static_cast<GPtrDiff_t>(bufferType.GetSize());
            if (!GDALExtendedDataType::CopyValues(src, m_type, step[0], dst, bufferType,
                                                  stride[0], n))
                return false;
        }
        return true;
    }
    catch (const std::bad_alloc &)
    {
        CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory reading time values");
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_AppDefined, "GRIDSTORE: unexpected error reading time values");
    }
    return false;
}

/************************************************************************/
/*                        GridstoreVariableArray                        */
/************************************************************************/

GridstoreVariableArray::GridstoreVariableArray(
    const std::shared_ptr<GridstoreMdimStore> &store, int array, const GsMdimArrayInfo &info,
    const std::vector<std::shared_ptr<GDALDimension>> &dims)
    : GDALAbstractMDArray(kRoot, info.name), GDALMDArray(kRoot, info.name), m_store(store),
      m_array(array), m_dims(dims),
      m_type(GDALExtendedDataType::Create(static_cast<GDALDataType>(store->info.data_type))),
      m_unit(info.unit ? info.unit : ""), m_hasNodata(info.has_nodata != 0),
      m_hasScale(info.has_scale != 0), m_scale(info.scale), m_hasOffset(info.has_offset != 0),
      m_offset(info.offset)
{
    if (m_hasNodata)
    {
        m_nodata.resize(m_type.GetSize());
        GDALCopyWords(&info.nodata, GDT_Float64, 0, m_nodata.data(),
                      m_type.GetNumericDataType(), 0, 1);
    }
    const std::string description = info.description ? info.description : "";
    if (!description.empty() && description != GetName())
        m_attributes.push_back(Text(GetFullName(), "long_name", description));
}

std::shared_ptr<GridstoreVariableArray> GridstoreVariableArray::Create(
    const std::shared_ptr<GridstoreMdimStore> &store, int array,
    const std::vector<std::shared_ptr<GDALDimension>> &dims)
{
    GsMdimArrayInfo info{};
    if (gridstore_mdim_array_info(store->handle, array, &info) != 0)
        return nullptr;
    std::shared_ptr<GridstoreVariableArray> a(new GridstoreVariableArray(store, array, info,
                                                                         dims));
    a->SetSelf(a);
    return a;
}

std::vector<GUInt64> GridstoreVariableArray::GetBlockSize() const
{
    // A block is one time step's tile: the chunk a map read decodes.
    const GUInt64 tile = static_cast<GUInt64>(m_store->info.tile_size);
    std::vector<GUInt64> size(m_dims.size(), 1);
    size[m_dims.size() - 1] = tile;
    size[m_dims.size() - 2] = tile;
    return size;
}

std::shared_ptr<OGRSpatialReference> GridstoreVariableArray::GetSpatialRef() const
{
    try
    {
        const char *wkt = m_store->info.crs_wkt;
        if (wkt == nullptr || wkt[0] == '\0')
            return nullptr;
        auto srs = std::make_shared<OGRSpatialReference>();
        srs->SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
        if (srs->importFromWkt(wkt) != OGRERR_NONE)
            return nullptr;
        // Which array dimension (from 1) each CRS axis runs along, as the netCDF driver
        // says it: x is the last dimension, y the one before.
        const int dimX = static_cast<int>(m_dims.size());
        const int dimY = dimX - 1;
        if (srs->GetDataAxisToSRSAxisMapping() == std::vector<int>{2, 1})
            srs->SetDataAxisToSRSAxisMapping({dimY, dimX});
        else
            srs->SetDataAxisToSRSAxisMapping({dimX, dimY});
        return srs;
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory reading the CRS");
    }
    return nullptr;
}

const void *GridstoreVariableArray::GetRawNoDataValue() const
{
    return m_hasNodata ? m_nodata.data() : nullptr;
}

double GridstoreVariableArray::GetOffset(bool *hasOffset, GDALDataType *storageType) const
{
    if (hasOffset)
        *hasOffset = m_hasOffset;
    if (storageType)
        *storageType = GDT_Unknown;
    return m_hasOffset ? m_offset : 0.0;
}

double GridstoreVariableArray::GetScale(bool *hasScale, GDALDataType *storageType) const
{
    if (hasScale)
        *hasScale = m_hasScale;
    if (storageType)
        *storageType = GDT_Unknown;
    return m_hasScale ? m_scale : 1.0;
}

bool GridstoreVariableArray::IRead(const GUInt64 *start, const size_t *count,
                                   const GInt64 *step, const GPtrDiff_t *stride,
                                   const GDALExtendedDataType &bufferType, void *buffer) const
{
    try
    {
        // A store without time is one step: the request gains a time dimension of one.
        if (m_dims.size() == 3)
            return ReadSteps(start, count, step, stride, bufferType,
                             static_cast<GByte *>(buffer));
        const GUInt64 start3[3] = {0, start[0], start[1]};
        const size_t count3[3] = {1, count[0], count[1]};
        const GInt64 step3[3] = {1, step[0], step[1]};
        const GPtrDiff_t stride3[3] = {0, stride[0], stride[1]};
        return ReadSteps(start3, count3, step3, stride3, bufferType,
                         static_cast<GByte *>(buffer));
    }
    catch (const std::bad_alloc &)
    {
        CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory reading %s",
                 GetFullName().c_str());
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_AppDefined, "GRIDSTORE: unexpected error reading %s",
                 GetFullName().c_str());
    }
    return false;
}

bool GridstoreVariableArray::ReadSteps(const GUInt64 *start, const size_t *count,
                                       const GInt64 *step, const GPtrDiff_t *stride,
                                       const GDALExtendedDataType &bufferType,
                                       GByte *buffer) const
{
    // GDAL has checked the request against the dimensions; the store checks it again.
    // It is read in parts of at most MaxReadBytes() of the store's type (one sample at
    // least): columns, then rows, then time steps, as many as fit.
    const size_t size = m_type.GetSize();
    const GPtrDiff_t bufSize = static_cast<GPtrDiff_t>(bufferType.GetSize());
    const GUInt64 budget = std::max<GUInt64>(MaxReadBytes() / size, 1);
    const size_t cols = FitCount(count[2], step[2], budget);
    const GUInt64 spanX = static_cast<GUInt64>(cols - 1) *
                              static_cast<GUInt64>(step[2] < 0 ? -step[2] : step[2]) +
                          1;
    const size_t rows = FitCount(count[1], step[1], budget / spanX);
    const GUInt64 spanY = static_cast<GUInt64>(rows - 1) *
                              static_cast<GUInt64>(step[1] < 0 ? -step[1] : step[1]) +
                          1;
    const size_t steps = static_cast<size_t>(std::min<GUInt64>(
        {static_cast<GUInt64>(count[0]), std::max<GUInt64>(1, budget / (spanX * spanY)),
         static_cast<GUInt64>(INT_MAX)}));
    std::vector<GByte> native;
    std::vector<unsigned long long> ticks;
    for (size_t i0 = 0; i0 < count[1]; i0 += rows)
    {
        const size_t r = std::min(rows, count[1] - i0);
        GUInt64 y0 = 0, h = 0;
        Span(start[1] + static_cast<GUInt64>(static_cast<GInt64>(i0) * step[1]), r, step[1],
             y0, h);
        for (size_t j0 = 0; j0 < count[2]; j0 += cols)
        {
            const size_t c = std::min(cols, count[2] - j0);
            GUInt64 x0 = 0, w = 0;
            Span(start[2] + static_cast<GUInt64>(static_cast<GInt64>(j0) * step[2]), c,
                 step[2], x0, w);
            if (x0 > INT_MAX || y0 > INT_MAX || w > INT_MAX || h > INT_MAX)
            {
                CPLError(CE_Failure, CPLE_AppDefined,
                         "GRIDSTORE: %s: a read beyond the pixels GDAL can address",
                         GetFullName().c_str());
                return false;
            }
            for (size_t t0 = 0; t0 < count[0]; t0 += steps)
            {
                const size_t n = std::min(steps, count[0] - t0);
                ticks.resize(n);
                for (size_t k = 0; k < n; k++)
                    ticks[k] = start[0] + static_cast<GUInt64>(
                                              static_cast<GInt64>(t0 + k) * step[0]);
                const size_t plane = static_cast<size_t>(w * h) * size;
                native.resize(plane * n);
                if (gridstore_mdim_read(m_store->handle, m_array, static_cast<int>(n),
                                        ticks.data(), static_cast<int>(x0),
                                        static_cast<int>(y0), static_cast<int>(w),
                                        static_cast<int>(h), native.data()) != 0)
                    return false;
                // Each output row from its input row, every step[2]-th sample.
                for (size_t k = 0; k < n; k++)
                    for (size_t i = 0; i < r; i++)
                    {
                        const GUInt64 row =
                            start[1] +
                            static_cast<GUInt64>(static_cast<GInt64>(i0 + i) * step[1]) - y0;
                        const GUInt64 col =
                            start[2] + static_cast<GUInt64>(static_cast<GInt64>(j0) * step[2]) -
                            x0;
                        const GByte *src =
                            native.data() + k * plane + static_cast<size_t>(row * w + col) * size;
                        GByte *dst =
                            buffer + (static_cast<GPtrDiff_t>(t0 + k) * stride[0] +
                                      static_cast<GPtrDiff_t>(i0 + i) * stride[1] +
                                      static_cast<GPtrDiff_t>(j0) * stride[2]) *
                                         bufSize;
                        if (!GDALExtendedDataType::CopyValues(src, m_type, step[2], dst,
                                                              bufferType, stride[2], c))
                            return false;
                    }
            }
        }
    }
    return true;
}
