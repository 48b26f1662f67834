// The multidimensional view of a store (GDAL_OF_MULTIDIM_RASTER opens: gdalmdiminfo,
// gdalmdimtranslate): a root group with the dimensions time, y and x and one array per
// store band. Like the classic classes, these hold no logic of their own: facts and pixels
// come through the C ABI in gridstore_capi.h (gridstore_mdim_*). See docs/DRIVER.md,
// "Multidimensional view".
#ifndef GRIDSTORE_MDIM_H
#define GRIDSTORE_MDIM_H

#include <memory>
#include <string>
#include <vector>

#include "gdal_priv.h"

#include "gridstore_capi.h"

// The open store every object of one view shares: arrays may outlive the dataset (a
// caller keeps an array and closes the dataset), so each holds the store.
struct GridstoreMdimStore
{
    GridstoreMdimStore(GsMdim *handle, const std::string &filename);
    ~GridstoreMdimStore();
    GridstoreMdimStore(const GridstoreMdimStore &) = delete;
    GridstoreMdimStore &operator=(const GridstoreMdimStore &) = delete;

    GsMdim *handle;
    GsMdimInfo info{};
    std::string filename;
};

// A dataset with no bands whose only content is its root group. Only multidimensional
// opens make one: a classic open must have no root group, or gdal_translate would take
// the multidimensional copy path.
class GridstoreMdimDataset final : public GDALDataset
{
  public:
    // GridstoreDataset::Open hands over opens with GDAL_OF_MULTIDIM_RASTER.
    static GDALDataset *Open(GDALOpenInfo *info);

    std::shared_ptr<GDALGroup> GetRootGroup() const override
    {
        return m_root;
    }

  private:
    std::shared_ptr<GDALGroup> m_root;
};

// The root group: the dimensions, their indexing variables, then one array per variable.
class GridstoreMdimGroup final : public GDALGroup
{
  public:
    static std::shared_ptr<GridstoreMdimGroup> Create(
        const std::shared_ptr<GridstoreMdimStore> &store);

    std::vector<std::string> GetMDArrayNames(CSLConstList options = nullptr) const override;
    std::shared_ptr<GDALMDArray> OpenMDArray(const std::string &name,
                                             CSLConstList options = nullptr) const override;
    std::vector<std::shared_ptr<GDALDimension>> GetDimensions(
        CSLConstList options = nullptr) const override;

  private:
    GridstoreMdimGroup();
    // Adds the x and y dimensions and their pixel-centre indexing variables.
    void AddSpatialDimensions(const GsMdimInfo &info, const OGRSpatialReference *srs);

    std::vector<std::shared_ptr<GDALDimension>> m_dims;
    // Indexing variables first, as netCDF lists them, then the variables.
    std::vector<std::shared_ptr<GDALMDArray>> m_arrays;
};

// The time dimension's indexing variable: Float64 values in the axis's CF units (GetUnit),
// with the CF attributes calendar, standard_name and axis.
class GridstoreTimeArray final : public GDALMDArray
{
  public:
    static std::shared_ptr<GridstoreTimeArray> Create(
        const std::shared_ptr<GridstoreMdimStore> &store,
        const std::shared_ptr<GDALDimension> &dim);

    bool IsWritable() const override
    {
        return false;
    }
    const std::string &GetFilename() const override
    {
        return m_store->filename;
    }
    const std::vector<std::shared_ptr<GDALDimension>> &GetDimensions() const override
    {
        return m_dims;
    }
    const GDALExtendedDataType &GetDataType() const override
    {
        return m_type;
    }
    const std::string &GetUnit() const override
    {
        return m_unit;
    }
    std::vector<std::shared_ptr<GDALAttribute>> GetAttributes(
        CSLConstList options = nullptr) const override
    {
        return m_attributes;
    }

  protected:
    bool IRead(const GUInt64 *start, const size_t *count, const GInt64 *step,
               const GPtrDiff_t *stride, const GDALExtendedDataType &bufferType,
               void *buffer) const override;

  private:
    GridstoreTimeArray(const std::shared_ptr<GridstoreMdimStore> &store,
                       const std::shared_ptr<GDALDimension> &dim);

    std::shared_ptr<GridstoreMdimStore> m_store;
    std::vector<std::shared_ptr<GDALDimension>> m_dims;
    GDALExtendedDataType m_type = GDALExtendedDataType::Create(GDT_Float64);
    std::string m_unit;
    std::vector<std::shared_ptr<GDALAttribute>> m_attributes;
};

// One store band over (time, y, x), or (y, x) for a store without time.
class GridstoreVariableArray final : public GDALMDArray
{
  public:
    static std::shared_ptr<GridstoreVariableArray> Create(
        const std::shared_ptr<GridstoreMdimStore> &store, int array,
        const std::vector<std::shared_ptr<GDALDimension>> &dims);

    bool IsWritable() const override
    {
        return false;
    }
    const std::string &GetFilename() const override
    {
        return m_store->filename;
    }
    const std::vector<std::shared_ptr<GDALDimension>> &GetDimensions() const override
    {
        return m_dims;
    }
    const GDALExtendedDataType &GetDataType() const override
    {
        return m_type;
    }
    std::vector<GUInt64> GetBlockSize() const override;
    std::shared_ptr<OGRSpatialReference> GetSpatialRef() const override;
    const void *GetRawNoDataValue() const override;
    double GetOffset(bool *hasOffset = nullptr,
                     GDALDataType *storageType = nullptr) const override;
    double GetScale(bool *hasScale = nullptr,
                    GDALDataType *storageType = nullptr) const override;
    const std::string &GetUnit() const override
    {
        return m_unit;
    }
    std::vector<std::shared_ptr<GDALAttribute>> GetAttributes(
        CSLConstList options = nullptr) const override
    {
        return m_attributes;
    }

  protected:
    bool IRead(const GUInt64 *start, const size_t *count, const GInt64 *step,
               const GPtrDiff_t *stride, const GDALExtendedDataType &bufferType,
               void *buffer) const override;

  private:
    GridstoreVariableArray(const std::shared_ptr<GridstoreMdimStore> &store, int array,
                           const GsMdimArrayInfo &info,
                           const std::vector<std::shared_ptr<GDALDimension>> &dims);
    // IRead's work, on a request over (time, y, x) (a store without time has one step).
    bool ReadSteps(const GUInt64 *start, const size_t *count, const GInt64 *step,
                   const GPtrDiff_t *stride, const GDALExtendedDataType &bufferType,
                   GByte *buffer) const;

    std::shared_ptr<GridstoreMdimStore> m_store;
    int m_array;
    std::vector<std::shared_ptr<GDALDimension>> m_dims;
    GDALExtendedDataType m_type;
    std::string m_unit;
    bool m_hasNodata;
    std::vector<GByte> m_nodata;  // the nodata value in the array's type
    bool m_hasScale;
    double m_scale;
    bool m_hasOffset;
    double m_offset;
    std::vector<std::shared_ptr<GDALAttribute>> m_attributes;
};

#endif  // GRIDSTORE_MDIM_H
