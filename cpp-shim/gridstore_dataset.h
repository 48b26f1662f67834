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

// The validity mask of the bands that have no nodata value: one per dataset (`band` 0),
// or, in a time view, one per band (each band is a time step with its own validity).
class GridstoreMaskBand final : public GDALRasterBand
{
  public:
    GridstoreMaskBand(GridstoreDataset *ds, int band);

  protected:
    CPLErr IReadBlock(int nBlockXOff, int nBlockYOff, void *pImage) override;

  private:
    int m_of = 0;
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
    CPLErr IRasterIO(GDALRWFlag eRWFlag, int nXOff, int nYOff, int nXSize, int nYSize,
                     void *pData, int nBufXSize, int nBufYSize, GDALDataType eBufType,
                     GSpacing nPixelSpace, GSpacing nLineSpace,
                     GDALRasterIOExtraArg *psExtraArg) override;
    int GetOverviewCount() override;
    GDALRasterBand *GetOverview(int i) override;
    int GetMaskFlags() override;
    GDALRasterBand *GetMaskBand() override;

    // Band settings. On the base level of a dataset open for update they go to the store
    // (which takes them while it is being created, and otherwise only unchanged); elsewhere
    // GDAL's own handling applies.
    CPLErr SetNoDataValue(double value) override;
    CPLErr DeleteNoDataValue() override;
    CPLErr SetColorInterpretation(GDALColorInterp interp) override;
    CPLErr SetColorTable(GDALColorTable *table) override;
    CPLErr SetUnitType(const char *unit) override;
    CPLErr SetScale(double scale) override;
    CPLErr SetOffset(double offset) override;
    void SetDescription(const char *description) override;
    CPLErr SetMetadata(char **metadata, const char *domain = "") override;
    CPLErr SetMetadataItem(const char *name, const char *value,
                           const char *domain = "") override;

    // Reads the band's information again (after the store's description changed: the
    // strings it pointed to are gone).
    void Refresh();

  protected:
    CPLErr IReadBlock(int nBlockXOff, int nBlockYOff, void *pImage) override;
    CPLErr IWriteBlock(int nBlockXOff, int nBlockYOff, void *pImage) override;

  private:
    // Whether settings go to the store (see above).
    bool SettingsGoToStore() const;
    // Whether the store is being created (so that descriptions and metadata are stored).
    bool Creating() const;
    // Hands `next` (this band's settings with some changed) to the store.
    CPLErr StoreSettings(const GsBandInfo &next);
    void LoadColorTable();

    GsBandInfo m_info{};
    std::unique_ptr<GDALColorTable> m_colorTable;
    // This band's own validity mask, in a time view (see GsDatasetInfo.masks_per_band).
    std::unique_ptr<GridstoreMaskBand> m_ownMask;
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
    static GDALDataset *Create(const char *filename, int xSize, int ySize, int bands,
                               GDALDataType type, char **options);

    CPLErr GetGeoTransform(double *transform) override;
    const OGRSpatialReference *GetSpatialRef() const override;
    // Georeferencing and metadata: taken by a store being created (GDAL's Create);
    // otherwise only a setting that changes nothing is accepted.
    CPLErr SetGeoTransform(double *transform) override;
    CPLErr SetSpatialRef(const OGRSpatialReference *srs) override;
    CPLErr SetMetadata(char **metadata, const char *domain = "") override;
    CPLErr SetMetadataItem(const char *name, const char *value,
                           const char *domain = "") override;
    // Full-resolution writes of several bands go band by band to the store (see
    // WriteWindow); small full-resolution reads over bands that are separate reads (time
    // steps) go to the store in one call (see ReadWindow); everything else as GDAL does it.
    CPLErr IRasterIO(GDALRWFlag rw, int x, int y, int w, int h, void *data, int bufW, int bufH,
                     GDALDataType bufType, int bandCount, int *bandMap, GSpacing pixelSpace,
                     GSpacing lineSpace, GSpacing bandSpace,
                     GDALRasterIOExtraArg *extra) override;
    // Writes GDAL's dirty blocks, then commits them (base dataset in update mode).
    void FlushCache(bool bAtClosing) override;
    // Levels are kept up to date by every write: asking for levels the store has succeeds
    // without doing anything; asking for others (or to remove them) is refused.
    CPLErr IBuildOverviews(const char *resampling, int overviewCount, const int *overviewList,
                           int bandCount, const int *bandList, GDALProgressFunc progress,
                           void *progressData, CSLConstList options) override;

  private:
    // `level` 0 is the dataset GDAL opens; levels above are its overviews.
    GridstoreDataset(std::shared_ptr<GsStore> store, int level, GDALAccess access);
    CPLErr WriteBlock(int blockX, int blockY, int band, const void *image);
    // Writes a window of band `band` straight to the store, bypassing GDAL's block cache,
    // whose dirty blocks would otherwise pile up to GDAL_CACHEMAX before reaching the
    // store: a window from a buffer of any type and spacing.
    CPLErr WriteWindow(int band, int x, int y, int w, int h, const void *data,
                       GDALDataType bufType, GSpacing pixelSpace, GSpacing lineSpace);
    // Whether a request is a full-resolution write this dataset takes straight to the store.
    bool WritesDirectly(GDALRWFlag rw, int w, int h, int bufW, int bufH) const;
    // On an overview: reports that only the base level takes writes, and returns true.
    bool RefuseOverviewWrite();
    // Whether the last band is an alpha band that GDAL's own rule makes the mask of the
    // others (2 or 4 bands, Byte or UInt16), as GTiff reports for the same bands.
    bool AlphaIsMask();
    // IBuildOverviews' work: succeeds for levels the store has, refuses anything else.
    CPLErr CheckOverviewRequest(int overviewCount, const int *overviewList,
                                GDALProgressFunc progress, void *progressData);
    // The overview factor of level `level` (2^level).
    static int LevelFactor(int level);
    // Drops the statistics GDAL computed on the bands: after a commit they describe a
    // state that is gone.
    void ForgetStatistics();
    // Reads the dataset's and every band's information again, here and in the overviews
    // made so far (after the store's description changed).
    void RefreshInfo();
    // Whether this is the base level of a store open for update, to which settings go.
    bool SettingsGoToStore() const;
    // Hands the default-domain metadata `next` to a store being created.
    CPLErr StoreMetadata(char **next);

    // Reads block (x, y) of the bands read together with band `band` (see
    // GsDatasetInfo.bands_per_read), returns band `band` in `image` and puts the others in
    // GDAL's block cache, since one chunk holds them all.
    CPLErr ReadBlock(int blockX, int blockY, int band, void *image);
    // The same for several blocks at once (decoded in parallel); with `image` NULL band
    // `band` goes to the cache too.
    CPLErr ReadBlocks(const std::vector<std::pair<int, int>> &blocks, int band, void *image);
    // The first and last band read together with band `band`.
    void ReadGroup(int band, int &first, int &last) const;
    // Whether a read is served by ReadWindow: full resolution, a window no larger than a
    // block, over bands that are not read together.
    bool ReadsWindowDirectly(GDALRWFlag rw, int w, int h, int bufW, int bufH,
                             int bandCount) const;
    // Reads a small window of many bands with gridstore_read_window, into a buffer of any
    // type and spacing.
    CPLErr ReadWindow(int x, int y, int w, int h, void *data, GDALDataType bufType,
                      int bandCount, const int *bandMap, GSpacing pixelSpace,
                      GSpacing lineSpace, GSpacing bandSpace);
    // A block of the validity mask of band `band` (0: the dataset's).
    CPLErr ReadMaskBlock(int band, int blockX, int blockY, void *image);
    // Decodes, in parallel, the blocks of a window that GDAL's cache does not hold yet for
    // band `band`, and puts them in the cache of every band read with it, so a request
    // spanning many blocks uses every core instead of decoding block after block.
    void PrefetchBlocks(int band, int x, int y, int w, int h);
    // The window of block (x, y), clipped to the raster.
    void BlockWindow(int blockX, int blockY, int &x, int &y, int &w, int &h) const;

    std::shared_ptr<GsStore> m_store;
    int m_level = 0;
    GsDatasetInfo m_info{};
    // Parsed on first use: parsing WKT initialises PROJ, which costs more than the open.
    mutable std::unique_ptr<OGRSpatialReference> m_srs;
    std::vector<std::unique_ptr<GridstoreDataset>> m_overviews;
    std::unique_ptr<GridstoreMaskBand> m_mask;
    // Set by the constructor once the bands exist (see AlphaIsMask).
    bool m_alphaIsMask = false;
};

#endif  // GRIDSTORE_DATASET_H
