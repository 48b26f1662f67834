// The GRIDSTORE driver: registration and the static entry points GDAL calls. Each one
// catches every C++ exception; the Rust side already reports its own failures.

#include "gridstore_dataset.h"
#include "gridstore_mdim.h"

int GridstoreDataset::Identify(GDALOpenInfo *info)
{
    try
    {
        return gridstore_identify(info->pszFilename, info->pabyHeader, info->nHeaderBytes,
                                  info->bIsDirectory);
    }
    catch (...)
    {
        return FALSE;
    }
}

GDALDataset *GridstoreDataset::Open(GDALOpenInfo *info)
{
    try
    {
        if (!Identify(info))
            return nullptr;
        // gdalmdiminfo, gdalmdimtranslate: the multidimensional view, a dataset of its own.
        if (info->nOpenFlags & GDAL_OF_MULTIDIM_RASTER)
            return GridstoreMdimDataset::Open(info);
        GsStore *raw = gridstore_open(info->pszFilename, info->papszOpenOptions,
                                      info->eAccess == GA_Update ? 1 : 0);
        if (raw == nullptr)
            return nullptr;
        std::shared_ptr<GsStore> store(raw, gridstore_close);
        std::unique_ptr<GridstoreDataset> ds(new GridstoreDataset(store, 0, info->eAccess));
        ds->SetDescription(info->pszFilename);
        // No TryLoadXML: PAM is off for stores (see the GridstoreDataset constructor).
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

GDALDataset *GridstoreDataset::CreateCopy(const char *filename, GDALDataset *src, int,
                                          char **options, GDALProgressFunc progress,
                                          void *progressData)
{
    try
    {
        if (gridstore_create_copy(filename, GDALDataset::ToHandle(src), options, progress,
                                  progressData) != 0)
            return nullptr;
        GDALOpenInfo info(filename, GA_ReadOnly);
        return Open(&info);
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_AppDefined, "GRIDSTORE: unexpected error creating %s",
                 filename);
    }
    return nullptr;
}

GDALDataset *GridstoreDataset::Create(const char *filename, int xSize, int ySize, int bands,
                                      GDALDataType type, char **options)
{
    // The store is made by the first commit (a flush once the geotransform is set, or the
    // close); until then the path holds a store being created that nothing can open.
    try
    {
        GsStore *raw = gridstore_create(filename, xSize, ySize, bands, type, options);
        if (raw == nullptr)
            return nullptr;
        std::shared_ptr<GsStore> store(raw, gridstore_close);
        std::unique_ptr<GridstoreDataset> ds(new GridstoreDataset(store, 0, GA_Update));
        ds->SetDescription(filename);
        return ds.release();
    }
    catch (const std::bad_alloc &)
    {
        CPLError(CE_Failure, CPLE_OutOfMemory, "GRIDSTORE: out of memory creating %s", filename);
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_AppDefined, "GRIDSTORE: unexpected error creating %s",
                 filename);
    }
    return nullptr;
}

CPLErr GridstoreDataset::Delete(const char *filename)
{
    try
    {
        return gridstore_delete(filename) == 0 ? CE_None : CE_Failure;
    }
    catch (...)
    {
        return CE_Failure;
    }
}

extern "C" void gridstore_shim_register(void)
{
    try
    {
        if (GDALGetDriverByName("GRIDSTORE") != nullptr)
            return;
        GDALDriver *driver = new GDALDriver();
        driver->SetDescription("GRIDSTORE");
        driver->SetMetadataItem(GDAL_DCAP_RASTER, "YES");
        driver->SetMetadataItem(GDAL_DCAP_MULTIDIM_RASTER, "YES");
        driver->SetMetadataItem(GDAL_DMD_LONGNAME, "gridstore chunked multi-resolution store");
        driver->SetMetadataItem(GDAL_DMD_EXTENSION, "gridstore");
        // "json" lets file dialogs (QGIS) pick the manifest inside a store directory.
        driver->SetMetadataItem(GDAL_DMD_EXTENSIONS, "gridstore json");
        driver->SetMetadataItem(GDAL_DMD_HELPTOPIC, "docs/DRIVER.md");
        driver->SetMetadataItem(GDAL_DMD_CONNECTION_PREFIX, "GRIDSTORE:");
        driver->SetMetadataItem(GDAL_DMD_CREATIONDATATYPES,
                                "Byte UInt16 Int16 UInt32 Int32 Float32 Float64");
        driver->SetMetadataItem(GDAL_DMD_CREATIONOPTIONLIST, gridstore_creation_option_list());
        driver->SetMetadataItem(GDAL_DMD_OPENOPTIONLIST, gridstore_open_option_list());
        driver->SetMetadataItem("GRIDSTORE_VERSION", gridstore_version());
        driver->pfnIdentify = GridstoreDataset::Identify;
        driver->pfnOpen = GridstoreDataset::Open;
        driver->pfnCreateCopy = GridstoreDataset::CreateCopy;
        driver->pfnCreate = GridstoreDataset::Create;
        driver->SetMetadataItem(GDAL_DCAP_CREATE, "YES");
        driver->pfnDelete = GridstoreDataset::Delete;
        GetGDALDriverManager()->RegisterDriver(driver);
    }
    catch (...)
    {
        CPLError(CE_Failure, CPLE_AppDefined, "GRIDSTORE: the driver could not be registered");
    }
}
