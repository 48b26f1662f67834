// GDAL dataset and band classes over a gridstore. They hold no logic of their own: every
// read goes through the C ABI in gridstore_capi.h.
#ifndef GRIDSTORE_DATASET_H
#define GRIDSTORE_DATASET_H

#include <memory>
#include <vector>

#include "gdal_pam.h"
#include "gdal_priv.h"
#include "ogr_spatialref.h"

#include "gridstore_capi.h"

class GridstoreDataset;

// The per-dataset validity mask of the bands that have no nodata value.
class GridstoreMaskBand final : public GDALRasterBand
{
  public:
    explicit GridstoreMaskBand(GridstoreDataset *ds);

  protected:
    CPLErr IReadBlock(int nBlockXOff, int nBlockYOff, void *pImage) override;
};

class GridstoreBand final : public GDALPamRasterBand
{
  public:
    GridstoreBand(GridstoreDataset *ds, int band);

    double GetNoDataValue(int *pbSuccess = nullptr) override;
    GDALColorInterp GetColorInterpretation() override;
    GDALColorTable *GetColorTable() override;
    double GetOffset(int *pbSuccess = nullptr) override;
    double GetScale(int *pbSuccess = nullptr) override;
    const char *GetUnitType() override;
    int GetOverviewCount() override;
    GDALRasterBand *GetOverview(int i) override;
    int GetMaskFlags() override;
    GDALRasterBand *GetMaskBand() override;

  protected:
    CPLErr IReadBlock(int nBlockXOff, int nBlockYOff, void *pImage) override;

  private:
    GsBandInfo m_info{};
    std::unique_ptr<GDALColorTable> m_colorTable;
};

class GridstoreDataset final : public GDALPamDataset
{
    friend class GridstoreBand;
    friend class GridstoreMaskBand;

  public:
    ~GridstoreDataset() override;

    static int Identify(GDALOpenInfo *info);
    static GDALDataset *Open(GDALOpenInfo *info);
    static GDALDataset *CreateCopy(const char *filename, GDALDataset *src, int strict,
                                   char **options, GDALProgressFunc progress,
                                   void *progressData);
    static CPLErr Delete(const char *filename);

    CPLErr GetGeoTransform(double *transform) override;
    const OGRSpatialReference *GetSpatialRef() const override;

  private:
    // `level` 0 is the dataset GDAL opens; levels above are its overviews.
    GridstoreDataset(std::shared_ptr<GsStore> store, int level);

    // Reads block (x, y) of every band, returns band `band` in `image` and puts the other
    // bands in GDAL's block cache, since one chunk holds all bands.
    CPLErr ReadBlock(int blockX, int blockY, int band, void *image);
    CPLErr ReadMaskBlock(int blockX, int blockY, void *image);
    // The window of block (x, y), clipped to the raster.
    void BlockWindow(int blockX, int blockY, int &x, int &y, int &w, int &h) const;

    std::shared_ptr<GsStore> m_store;
    int m_level = 0;
    GsDatasetInfo m_info{};
    OGRSpatialReference m_srs;
    std::vector<std::unique_ptr<GridstoreDataset>> m_overviews;
    std::unique_ptr<GridstoreMaskBand> m_mask;
    std::vector<GByte> m_scratch;
};

#endif  // GRIDSTORE_DATASET_H
