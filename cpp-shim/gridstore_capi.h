/*
 * The C ABI between the GDAL driver shim (C++) and the gridstore library (Rust).
 *
 * The Rust library implements the gridstore_* functions; the shim implements
 * gridstore_shim_register(). Every Rust function reports its failures with CPLError()
 * before returning, catches every panic, and never unwinds into C++.
 *
 * Structs are shared with Rust through bindgen, so this header is the single definition.
 */
#ifndef GRIDSTORE_CAPI_H
#define GRIDSTORE_CAPI_H

#include "gdal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An open store: one snapshot, read-only; or, opened for update, a write session whose
 * reads see what it wrote. Used by one thread at a time. */
typedef struct GsStore GsStore;

typedef struct GsDatasetInfo {
    int width;              /* level-0 dataset size in pixels */
    int height;
    int band_count;         /* GDAL bands: store bands, or the time steps of one */
    int level_count;        /* levels, including level 0 */
    int tile_size;          /* block size GDAL should use */
    int data_type;          /* GDALDataType */
    int has_geotransform;
    double geotransform[6];
    /* Mask flags of the bands without nodata: GMF_ALL_VALID or GMF_PER_DATASET. */
    int mask_flags;
    /* Threads for decoding the blocks of one request (open option NUM_THREADS). */
    int read_threads;
    /* The fewest blocks worth reading at once, in parallel: fewer decode faster one after
     * the other on disk; over the network, where each costs a request, two are enough. */
    int min_parallel_blocks;
    /* 1 while a store made by gridstore_create has not been committed yet: its
     * georeferencing and band settings can still be set. */
    int creating;
    /* How many consecutive GDAL bands one read of the store fills: every band when they
     * are the store bands of one moment (one chunk holds them all); 1 when each band is a
     * time step of a time store. Bands 1..n, n+1..2n, ... are read together. */
    int bands_per_read;
    /* 1 when each band without nodata has its own validity mask (each is a time step),
     * read with gridstore_read_mask for that band; mask_flags is then 0 or GMF_ALL_VALID. */
    int masks_per_band;
} GsDatasetInfo;

typedef struct GsBandInfo {
    int has_nodata;
    double nodata;
    const char *description;
    const char *color_interp;   /* GDAL name, e.g. "Gray", "Palette" */
    const char *unit;
    int has_scale;
    double scale;
    int has_offset;
    double offset;
    int color_table_size;       /* entries; 0 when the band has none */
    const short *color_table;   /* 4 values (c1..c4) per entry */
    int palette_interp;         /* GDALPaletteInterp */
    const char *resampling;     /* how this band's levels were made, e.g. "AVERAGE" */
    char **metadata;            /* NULL-terminated KEY=VALUE list, owned by the store */
} GsBandInfo;

/* 1 when `filename` names a store. Cheap: runs on every GDALOpen in the process. */
int gridstore_identify(const char *filename, const unsigned char *header, int header_bytes,
                       int is_directory);

/* Opens a store (for update when `update` is 1, which takes the writer lock); NULL on
 * failure (already reported). */
GsStore *gridstore_open(const char *filename, char **open_options, int update);
void gridstore_close(GsStore *store);

void gridstore_dataset_info(const GsStore *store, GsDatasetInfo *info);
/* Strings and lists stay valid until gridstore_close. */
const char *gridstore_crs_wkt(const GsStore *store);
char **gridstore_metadata(const GsStore *store, const char *domain);
void gridstore_band_info(const GsStore *store, int band, GsBandInfo *info);
void gridstore_level_size(const GsStore *store, int level, int *width, int *height);

/* Reads the validity mask (255 data, 0 none) of a window of a level (dataset pixel
 * coordinates of that level) into `mask` (w*h bytes), for the bands without nodata: those
 * of band `band` (from 1) when masks_per_band, else of every band. Returns 0 on success. */
int gridstore_read_mask(GsStore *store, int level, int band, int x, int y, int w, int h,
                        unsigned char *mask);

/* Reads `count` blocks of a level straight into GDAL block buffers, for the GDAL bands
 * first_band .. first_band + band_count - 1 (from 1; bands one read fills, see
 * bands_per_read). Block i is the window (xs[i], ys[i], ws[i], hs[i]) of the level (dataset
 * pixels); band first_band + b of it goes to blocks[i * band_count + b], a buffer of
 * block_size x block_size samples of the store's type (rows block_size apart), or nowhere
 * if that pointer is NULL. Blocks are decoded in parallel when there are enough of them.
 * Returns 0 on success. */
int gridstore_read_blocks(GsStore *store, int level, int first_band, int band_count,
                          int count, const int *xs, const int *ys, const int *ws,
                          const int *hs, void **blocks, int block_size);

/* Reads a window of a level (dataset pixels) of the bands band_map[0..band_count) (from 1)
 * into planes[i], each w*h samples of the store's type, without GDAL's block cache: for
 * small windows over many time steps, it decodes per step only the parts of its chunk the
 * window meets. Returns 0 on success. */
int gridstore_read_window(GsStore *store, int level, int x, int y, int w, int h,
                          int band_count, const int *band_map, void **planes);

/* Writes band `band` (1-based) of a level-0 window (dataset pixels) from `data`, rows
 * `stride` samples apart, in the store's data type. Only for stores opened for update.
 * Nothing is visible to other readers until gridstore_flush. Returns 0 on success. */
int gridstore_write_block(GsStore *store, int band, int x, int y, int w, int h,
                          const void *data, int stride);

/* Commits everything written since the last flush, with the levels above it, in one
 * transaction. A no-op for read-only stores or when nothing was written. A store being
 * created is made by its first commit, even with nothing written; that commit waits for
 * its geotransform, or for the close (`at_closing` 1). 0 on success. */
int gridstore_flush(GsStore *store, int at_closing);

/* GDAL's Create: starts a new store at `filename`, `width` x `height` pixels of `bands`
 * bands of `data_type` (a GDALDataType); nothing is visible at the path until the first
 * commit (gridstore_flush). NULL on failure (already reported). */
GsStore *gridstore_create(const char *filename, int width, int height, int bands,
                          int data_type, char **options);

/* The setters of a store being created: each replaces one part of its description and
 * returns 0, or reports why it cannot and returns 1. On a store that exists already, a
 * setter that changes nothing succeeds and any other is refused. Refresh the dataset and
 * band information afterwards: the strings they held are replaced. */
int gridstore_set_geotransform(GsStore *store, const double *geotransform);
/* `wkt`: the CRS as WKT, or "" for none. */
int gridstore_set_crs(GsStore *store, const char *wkt);
/* Every field of band `band` (0-based) as `info` gives it (`resampling` is ignored). */
int gridstore_set_band(GsStore *store, int band, const GsBandInfo *info);
/* The dataset's metadata (default domain), a NULL-terminated KEY=VALUE list. */
int gridstore_set_metadata(GsStore *store, char **metadata);

/* gdal_translate -of GRIDSTORE: creates a store from `source`, or merges `source` into the
 * store when it exists. Returns 0 on success. */
int gridstore_create_copy(const char *filename, GDALDatasetH source, char **options,
                          GDALProgressFunc progress, void *progress_data);

/* GDAL's Delete: refuses, and says how to remove a store. Returns 0 on success. */
int gridstore_delete(const char *filename);

const char *gridstore_creation_option_list(void);
const char *gridstore_open_option_list(void);
const char *gridstore_version(void);

/* ---- The multidimensional view (GDAL_OF_MULTIDIM_RASTER opens; docs/DRIVER.md,
 * "Multidimensional view"). Read-only; used by one thread at a time. ---- */

/* An open store as the multidimensional view shows it. */
typedef struct GsMdim GsMdim;

typedef struct GsMdimInfo {
    int width;                 /* level-0 size in pixels: the x and y dimensions */
    int height;
    int tile_size;             /* block size of the arrays along y and x */
    int data_type;             /* GDALDataType of every array */
    int has_geotransform;      /* 0: the geotransform is that of the pixel grid */
    double geotransform[6];    /* north-up */
    int has_time;              /* 0: the arrays are (y, x); no time dimension */
    unsigned long long time_count;  /* steps along the time dimension (1 without time) */
    const char *time_units;    /* CF units of the time values ("" without time) */
    const char *calendar;      /* CF calendar name ("" without time) */
    int array_count;           /* one array per store band */
    const char *crs_wkt;       /* "" when the store has none */
} GsMdimInfo;

typedef struct GsMdimArrayInfo {
    const char *name;          /* the variable's name, as the classic view's NETCDF_VARNAME */
    const char *unit;          /* "" when unknown */
    const char *description;   /* the store band's description, "" when none */
    int has_nodata;
    double nodata;
    int has_scale;
    double scale;
    int has_offset;
    double offset;
} GsMdimArrayInfo;

/* Opens the store `filename` for the multidimensional view; NULL on failure (already
 * reported). Open options: SNAPSHOT, NUM_THREADS; the classic view's time selections are
 * refused (the view shows every step; subset with gdalmdimtranslate -subset or GetView). */
GsMdim *gridstore_mdim_open(const char *filename, char **open_options);
void gridstore_mdim_close(GsMdim *mdim);
/* Strings stay valid until gridstore_mdim_close. */
void gridstore_mdim_info(const GsMdim *mdim, GsMdimInfo *info);
/* `array` from 0. Returns 0 on success. */
int gridstore_mdim_array_info(const GsMdim *mdim, int array, GsMdimArrayInfo *info);
/* The time values (CF units) of steps start .. start + count - 1 of the time dimension
 * into `values`. Returns 0 on success. */
int gridstore_mdim_time_values(const GsMdim *mdim, unsigned long long start,
                               unsigned long long count, double *values);
/* Reads the window (x, y, w, h) (level-0 pixels) of array `array` at each of the
 * `step_count` steps `steps` (indices along the time dimension; 0 without time) into `out`:
 * step_count planes of h rows of w samples of the array's type, in that order. Pixels
 * without data get the array's nodata (or 0). Returns 0 on success. */
int gridstore_mdim_read(GsMdim *mdim, int array, int step_count,
                        const unsigned long long *steps, int x, int y, int w, int h,
                        void *out);

/* Implemented by the shim: creates and registers the GRIDSTORE driver. */
void gridstore_shim_register(void);

#ifdef __cplusplus
}
#endif

#endif /* GRIDSTORE_CAPI_H */
