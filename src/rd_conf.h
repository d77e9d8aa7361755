/*
 * rd_conf.h - configuration: directive tables over libconfig.
 *
 * Each module describes its directives in a table (rd_directive_t rows):
 * the name, the level where it may appear, a setter and the offset of the
 * field it fills in the module's configuration struct for that level. The
 * reader walks the libconfig tree and hands every setting to the directive
 * with its name; a setting nobody claims is an error. Names are dotted
 * paths: "limits.max_pipeline" is the setting max_pipeline inside the group
 * limits, so several modules can share one group.
 *
 * Levels: MAIN is the top of the file, LISTEN one element of the listen
 * list, DB one element of the databases list.
 *
 * Setters return NULL on success or a short phrase ("must be a duration
 * such as \"30s\""); the reader prefixes file, line and directive:
 *     redoubt.conf:12: limits.idle_timeout: must be a duration ...
 *
 * All memory of a configuration comes from its pool and is freed in one go
 * when the cycle it belongs to is destroyed.
 */
#ifndef RD_CONF_H
#define RD_CONF_H

#include <stdio.h>

#include <libconfig.h>

#include "rd_core.h"

enum {
    RD_CONF_MAIN = 0,
    RD_CONF_LISTEN,
    RD_CONF_DB,
    RD_CONF_LEVELS
};

#define RD_CONF_UNSET       ((int64_t)-1)
#define RD_CONF_UNSET_PTR   NULL

/* --- pools ------------------------------------------------------------ */

typedef struct rd_pool_s rd_pool_t;
typedef void (*rd_cleanup_pt)(void *data);

rd_pool_t *rd_pool_create(void);
void       rd_pool_destroy(rd_pool_t *pool);
void      *rd_palloc(rd_pool_t *pool, size_t n);    /* zeroed */
char      *rd_pstrdup(rd_pool_t *pool, const char *s);
char      *rd_psprintf(rd_pool_t *pool, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Run fn(data) when the pool is destroyed (last added, first run). */
void       rd_pool_cleanup_add(rd_pool_t *pool, rd_cleanup_pt fn, void *data);

/* --- directives ------------------------------------------------------- */

typedef struct rd_conf_s      rd_conf_t;
typedef struct rd_directive_s rd_directive_t;

typedef const char *(*rd_conf_set_pt)(rd_conf_t *cf,
    const config_setting_t *s, const rd_directive_t *d, void *conf);

struct rd_directive_s {
    const char     *name;
    unsigned        level;
    rd_conf_set_pt  set;
    size_t          offset;
    const void     *post;     /* rd_conf_range_t, rd_conf_enum_t, ... */
};

#define rd_null_directive { NULL, 0, NULL, 0, NULL }

typedef struct {
    int64_t min;
    int64_t max;
} rd_conf_range_t;

typedef struct {
    const char *name;
    int         value;
} rd_conf_enum_t;               /* arrays end with { NULL, 0 } */

/* The reader's state, passed to setters and to the modules' hooks. */
struct rd_conf_s {
    rd_pool_t      *pool;
    rd_cycle_t     *cycle;
    const char     *file;       /* the main configuration file */
    char           *dir;        /* its directory, for relative paths */
    const char     *name;       /* directive being set (dotted path) */
    const config_setting_t *setting;   /* the setting being handled */
    void          **ctx;        /* module confs of the current level */
    rd_listener_t  *listener;   /* while reading one listen element */
    rd_database_t  *database;   /* while reading one databases element */
    char           *error;      /* first error, formatted */
    const char     *last_file;  /* libconfig's name of the file last */
    const char     *last_copy;  /* remembered, and our copy of it */
};

/* Where one directive, or one listen or databases element (name NULL),
 * was set; a list kept in the cycle's pool (rd_conf_where()). */
typedef struct rd_conf_where_s {
    struct rd_conf_where_s *next;
    void          **ctx;        /* the level's confs */
    const char     *name;       /* the directive, NULL: the element */
    const char     *element;    /* the element's directive ("listen") */
    const char     *file;
    unsigned        line;
} rd_conf_where_t;

/* Setters for the common types. Integer fields are int64_t (numbers,
 * sizes in bytes, durations in milliseconds, flags as 0/1, enums); string
 * and path fields are char * from the pool. */
const char *rd_conf_set_str(rd_conf_t *cf, const config_setting_t *s,
    const rd_directive_t *d, void *conf);
const char *rd_conf_set_path(rd_conf_t *cf, const config_setting_t *s,
    const rd_directive_t *d, void *conf);
const char *rd_conf_set_flag(rd_conf_t *cf, const config_setting_t *s,
    const rd_directive_t *d, void *conf);
const char *rd_conf_set_num(rd_conf_t *cf, const config_setting_t *s,
    const rd_directive_t *d, void *conf);
const char *rd_conf_set_msec(rd_conf_t *cf, const config_setting_t *s,
    const rd_directive_t *d, void *conf);
const char *rd_conf_set_size(rd_conf_t *cf, const config_setting_t *s,
    const rd_directive_t *d, void *conf);
const char *rd_conf_set_enum(rd_conf_t *cf, const config_setting_t *s,
    const rd_directive_t *d, void *conf);

/* "250ms", "30s", "5m", "8h", "1d", "0" -> milliseconds. -1 if invalid. */
int64_t rd_parse_duration(const char *s);
/* "512", "512b", "64kb", "16mb", "1gb" (also "k", "m", "g") -> bytes. */
int64_t rd_parse_size(const char *s);

/* Apply every setting of group g at the given level (used for list
 * elements such as listen and databases). Returns 0 or -1 (cf->error set). */
int rd_conf_apply_group(rd_conf_t *cf, const config_setting_t *g,
    unsigned level, void **ctx);
/* Create and initialise the module confs of one level. */
void **rd_conf_create_level(rd_conf_t *cf, unsigned level);
int rd_conf_init_level(rd_conf_t *cf, unsigned level, void **ctx,
    const config_setting_t *where);

/* Record an error at setting s (NULL: the file itself). Returns -1. */
int rd_conf_error(rd_conf_t *cf, const config_setting_t *s,
    const char *directive, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Errors found after a directive was read (an init_conf hook that checks
 * two settings together, a module's init_master hook that loads the file
 * a directive names, a socket a directive asks for) point at that
 * directive all the same: the reader remembers, with the cycle, where
 * each directive of each level was set. ctx is the level's confs
 * (cycle->main_conf, l->ctx or db->ctx; cf->ctx in an init_conf hook).
 * A directive that was not set (its default was used) is reported at its
 * listen or databases element, else at the file:
 *     redoubt.conf:42: tls.certificate: cannot open "/etc/x.crt": ...
 */
/* Write "FILE:LINE: DIRECTIVE" (or "FILE:LINE" when directive is NULL)
 * into buf and return buf. */
const char *rd_conf_where(rd_cycle_t *cycle, void **ctx,
    const char *directive, char *buf, size_t n);
/* In an init_conf hook: record the first error at that directive. */
int rd_conf_error_at(rd_conf_t *cf, void **ctx, const char *directive,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* In an init_master hook: record the first error of the cycle
 * (cycle->error) at that directive. Returns RD_ERROR. */
int rd_cycle_error(rd_cycle_t *cycle, void **ctx, const char *directive,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Read and check the file into cf->cycle. Returns 0 or -1 (cf->error). */
int rd_conf_read(rd_conf_t *cf, const char *path);

/* "redoubt -T": write the configuration at path, with its @include files
 * expanded, to out as libconfig reads it (comments are not kept). Returns
 * 0, or -1 with a message in err. */
int rd_conf_dump(const char *path, FILE *out, char *err, size_t n);

#define rd_conf_field(conf, off, type) ((type *)((char *)(conf) + (off)))

#endif
