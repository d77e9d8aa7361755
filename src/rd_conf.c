/*
 * rd_conf.c - configuration reader over libconfig; see rd_conf.h.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_conf.h"
#include "rd_cycle.h"
#include "rd_module.h"

/* --- pools -------------------------------------------------------------
 *
 * A pool is a list of allocations and cleanups, released together. The
 * configuration is small and read rarely, so a plain list is enough.
 */

typedef struct rd_pool_item_s {
    struct rd_pool_item_s *next;
    rd_cleanup_pt          fn;      /* NULL: a plain allocation */
    void                  *data;
} rd_pool_item_t;

struct rd_pool_s {
    rd_pool_item_t *items;
};

rd_pool_t *
rd_pool_create(void)
{
    return rd_calloc(1, sizeof(rd_pool_t));
}

void
rd_pool_destroy(rd_pool_t *pool)
{
    if (pool == NULL) {
        return;
    }
    rd_pool_item_t *it = pool->items;
    while (it) {
        rd_pool_item_t *next = it->next;
        if (it->fn) {
            it->fn(it->data);
        }
        free(it);
        it = next;
    }
    free(pool);
}

void *
rd_palloc(rd_pool_t *pool, size_t n)
{
    /* The item header and the memory share one allocation. */
    rd_pool_item_t *it = rd_calloc(1, sizeof(rd_pool_item_t) + n);
    it->next = pool->items;
    pool->items = it;
    return it + 1;
}

char *
rd_pstrdup(rd_pool_t *pool, const char *s)
{
    size_t n = strlen(s);
    char *d = rd_palloc(pool, n + 1);
    memcpy(d, s, n);
    return d;
}

char *
rd_psprintf(rd_pool_t *pool, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *d = rd_palloc(pool, (size_t)(n < 0 ? 0 : n) + 1);
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}

void
rd_pool_cleanup_add(rd_pool_t *pool, rd_cleanup_pt fn, void *data)
{
    rd_pool_item_t *it = rd_calloc(1, sizeof(rd_pool_item_t));
    it->fn = fn;
    it->data = data;
    it->next = pool->items;
    pool->items = it;
}

/* --- durations and sizes ------------------------------------------------ */

static int64_t
rd_parse_scaled(const char *s, const char *const *units,
                const int64_t *scale, size_t nunits, int unit_required)
{
    if (s == NULL || !isdigit((unsigned char)*s)) {
        return -1;
    }
    int64_t v = 0;
    const char *p = s;
    while (isdigit((unsigned char)*p)) {
        if (v > (INT64_MAX - 9) / 10) {
            return -1;
        }
        v = v * 10 + (*p++ - '0');
    }
    if (*p == '\0') {
        /* A bare number: zero is allowed everywhere ("off"), other values
         * only where the unit is implied. */
        return (v == 0 || !unit_required) ? v : -1;
    }
    for (size_t i = 0; i < nunits; i++) {
        if (strcasecmp(p, units[i]) == 0) {
            if (v > INT64_MAX / scale[i]) {
                return -1;
            }
            return v * scale[i];
        }
    }
    return -1;
}

int64_t
rd_parse_duration(const char *s)
{
    static const char *const units[] = { "ms", "s", "m", "h", "d" };
    static const int64_t scale[] = { 1, 1000, 60000, 3600000, 86400000 };
    return rd_parse_scaled(s, units, scale, rd_countof(units), 1);
}

int64_t
rd_parse_size(const char *s)
{
    static const char *const units[] = {
        "b", "k", "kb", "m", "mb", "g", "gb"
    };
    static const int64_t scale[] = {
        1, 1024, 1024, 1048576, 1048576, 1073741824, 1073741824
    };
    return rd_parse_scaled(s, units, scale, rd_countof(units), 0);
}

/* --- errors ------------------------------------------------------------ */

int
rd_conf_error(rd_conf_t *cf, const config_setting_t *s, const char *directive,
              const char *fmt, ...)
{
    if (cf->error) {
        return -1;          /* keep the first error, it is the cause */
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    const char *file = s ? config_setting_source_file(s) : NULL;
    unsigned line = s ? config_setting_source_line(s) : 0;
    if (file == NULL) {
        file = cf->file;
    }
    char where[1024];
    if (line > 0) {
        snprintf(where, sizeof(where), "%s:%u", file, line);
    } else {
        snprintf(where, sizeof(where), "%s", file);
    }
    if (directive && *directive) {
        cf->error = rd_psprintf(cf->pool, "%s: %s: %s", where, directive, msg);
    } else {
        cf->error = rd_psprintf(cf->pool, "%s: %s", where, msg);
    }
    return -1;
}

/* --- where directives were set -------------------------------------------
 *
 * The libconfig tree is gone once the file was read; what later checks
 * need of it is the file and line of each directive, kept here.
 */

static void
rd_conf_remember(rd_conf_t *cf, void **ctx, const char *name,
                 const char *element, const config_setting_t *s)
{
    rd_cycle_t *cycle = cf->cycle;
    if (cycle == NULL) {
        return;
    }
    const char *file = config_setting_source_file(s);
    if (file == NULL) {
        file = cf->file;
    }
    if (file != cf->last_file) {
        /* libconfig keeps one copy of each file name: copy it once. */
        cf->last_file = file;
        cf->last_copy = rd_pstrdup(cycle->pool, file);
    }
    rd_conf_where_t *w = rd_palloc(cycle->pool, sizeof(*w));
    w->ctx = ctx;
    w->name = name ? rd_pstrdup(cycle->pool, name) : NULL;
    w->element = element ? rd_pstrdup(cycle->pool, element) : NULL;
    w->file = cf->last_copy;
    w->line = config_setting_source_line(s);
    w->next = cycle->where;
    cycle->where = w;
}

const char *
rd_conf_where(rd_cycle_t *cycle, void **ctx, const char *directive,
              char *buf, size_t n)
{
    const rd_conf_where_t *w = NULL, *elem = NULL;
    for (const rd_conf_where_t *p = cycle ? cycle->where : NULL; p;
         p = p->next)
    {
        if (p->ctx != ctx) {
            continue;
        }
        if (p->name == NULL) {
            elem = p;
        } else if (directive && strcmp(p->name, directive) == 0) {
            w = p;
            break;
        }
    }
    if (w == NULL) {
        w = elem;
        if (directive == NULL && elem) {
            directive = elem->element;
        }
    }
    const char *file = w ? w->file : cycle ? cycle->conf_file : "?";
    int k;
    if (w && w->line > 0) {
        k = snprintf(buf, n, "%s:%u", file, w->line);
    } else {
        k = snprintf(buf, n, "%s", file);
    }
    if (directive && k >= 0 && (size_t)k < n) {
        snprintf(buf + k, n - (size_t)k, ": %s", directive);
    }
    return buf;
}

static char *
rd_conf_vlocated(rd_pool_t *pool, rd_cycle_t *cycle, void **ctx,
                 const char *directive, const char *fmt, va_list ap)
{
    char where[1024], msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    rd_conf_where(cycle, ctx, directive, where, sizeof(where));
    return rd_psprintf(pool, "%s: %s", where, msg);
}

int
rd_conf_error_at(rd_conf_t *cf, void **ctx, const char *directive,
                 const char *fmt, ...)
{
    if (cf->error) {
        return -1;
    }
    va_list ap;
    va_start(ap, fmt);
    cf->error = rd_conf_vlocated(cf->pool, cf->cycle, ctx, directive, fmt,
                                 ap);
    va_end(ap);
    return -1;
}

int
rd_cycle_error(rd_cycle_t *cycle, void **ctx, const char *directive,
               const char *fmt, ...)
{
    if (cycle->error) {
        return RD_ERROR;    /* the first error is the cause */
    }
    va_list ap;
    va_start(ap, fmt);
    cycle->error = rd_conf_vlocated(cycle->pool, cycle, ctx, directive, fmt,
                                    ap);
    va_end(ap);
    return RD_ERROR;
}

/* --- setters ------------------------------------------------------------ */

static const char *
rd_conf_get_string(const config_setting_t *s, const char **out)
{
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        return "must be a string";
    }
    *out = config_setting_get_string(s);
    return NULL;
}

const char *
rd_conf_set_str(rd_conf_t *cf, const config_setting_t *s,
                const rd_directive_t *d, void *conf)
{
    const char *v;
    const char *err = rd_conf_get_string(s, &v);
    if (err) {
        return err;
    }
    if (*v == '\0') {
        return "must not be empty";
    }
    *rd_conf_field(conf, d->offset, char *) = rd_pstrdup(cf->pool, v);
    return NULL;
}

const char *
rd_conf_set_path(rd_conf_t *cf, const config_setting_t *s,
                 const rd_directive_t *d, void *conf)
{
    const char *v;
    const char *err = rd_conf_get_string(s, &v);
    if (err) {
        return err;
    }
    if (*v == '\0') {
        return "must not be empty";
    }
    char *path;
    if (v[0] == '/' || strcmp(v, "stderr") == 0) {
        path = rd_pstrdup(cf->pool, v);
    } else {
        path = rd_psprintf(cf->pool, "%s/%s", cf->dir, v);
    }
    *rd_conf_field(conf, d->offset, char *) = path;
    return NULL;
}

const char *
rd_conf_set_flag(rd_conf_t *cf, const config_setting_t *s,
                 const rd_directive_t *d, void *conf)
{
    if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
        return "must be true or false";
    }
    *rd_conf_field(conf, d->offset, int64_t) = config_setting_get_bool(s);
    return NULL;
}

static const char *
rd_conf_check_range(const rd_directive_t *d, int64_t v, char *buf, size_t n)
{
    const rd_conf_range_t *r = d->post;
    if (r && (v < r->min || v > r->max)) {
        snprintf(buf, n, "must be between %lld and %lld",
                 (long long)r->min, (long long)r->max);
        return buf;
    }
    return NULL;
}

const char *
rd_conf_set_num(rd_conf_t *cf, const config_setting_t *s,
                const rd_directive_t *d, void *conf)
{
    static char buf[96];
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
        return "must be an integer";
    }
    int64_t v = config_setting_get_int64(s);
    const char *err = rd_conf_check_range(d, v, buf, sizeof(buf));
    if (err) {
        return err;
    }
    *rd_conf_field(conf, d->offset, int64_t) = v;
    return NULL;
}

const char *
rd_conf_set_msec(rd_conf_t *cf, const config_setting_t *s,
                 const rd_directive_t *d, void *conf)
{
    static char buf[96];
    int64_t v;
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_INT && config_setting_get_int(s) == 0) {
        v = 0;
    } else if (t == CONFIG_TYPE_STRING) {
        v = rd_parse_duration(config_setting_get_string(s));
        if (v < 0) {
            return "must be a duration with a unit, such as \"250ms\", "
                   "\"30s\", \"5m\", \"8h\" or \"1d\"";
        }
    } else {
        return "must be a duration string, such as \"30s\"";
    }
    const char *err = rd_conf_check_range(d, v, buf, sizeof(buf));
    if (err) {
        return err;
    }
    *rd_conf_field(conf, d->offset, int64_t) = v;
    return NULL;
}

const char *
rd_conf_set_size(rd_conf_t *cf, const config_setting_t *s,
                 const rd_directive_t *d, void *conf)
{
    static char buf[96];
    int64_t v;
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) {
        v = config_setting_get_int64(s);
        if (v < 0) {
            return "must not be negative";
        }
    } else if (t == CONFIG_TYPE_STRING) {
        v = rd_parse_size(config_setting_get_string(s));
        if (v < 0) {
            return "must be a size, such as \"64kb\", \"16mb\" or \"1gb\"";
        }
    } else {
        return "must be a size string, such as \"64kb\"";
    }
    const char *err = rd_conf_check_range(d, v, buf, sizeof(buf));
    if (err) {
        return err;
    }
    *rd_conf_field(conf, d->offset, int64_t) = v;
    return NULL;
}

const char *
rd_conf_set_enum(rd_conf_t *cf, const config_setting_t *s,
                 const rd_directive_t *d, void *conf)
{
    static char buf[256];
    const char *v;
    const char *err = rd_conf_get_string(s, &v);
    if (err) {
        return err;
    }
    const rd_conf_enum_t *e = d->post;
    for (const rd_conf_enum_t *p = e; p->name; p++) {
        if (strcmp(p->name, v) == 0) {
            *rd_conf_field(conf, d->offset, int64_t) = p->value;
            return NULL;
        }
    }
    size_t n = (size_t)snprintf(buf, sizeof(buf), "must be one of");
    for (const rd_conf_enum_t *p = e; p->name && n < sizeof(buf); p++) {
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s \"%s\"",
                              p == e ? "" : ",", p->name);
    }
    return buf;
}

/* --- the reader ---------------------------------------------------------- */

static const rd_directive_t *
rd_conf_find(unsigned level, const char *name, rd_module_t **mod,
             int *is_prefix)
{
    size_t n = strlen(name);
    *is_prefix = 0;
    for (unsigned i = 0; i < rd_nmodules; i++) {
        const rd_directive_t *d = rd_modules[i]->directives;
        for (; d && d->name; d++) {
            if (d->level != level) {
                continue;
            }
            if (strcmp(d->name, name) == 0) {
                *mod = rd_modules[i];
                return d;
            }
            if (strncmp(d->name, name, n) == 0 && d->name[n] == '.') {
                *is_prefix = 1;
            }
        }
    }
    return NULL;
}

static int
rd_conf_apply(rd_conf_t *cf, const config_setting_t *s, unsigned level,
              void **ctx, const char *prefix)
{
    char name[256];
    const char *sname = config_setting_name(s);

    if (sname == NULL) {
        return rd_conf_error(cf, s, prefix, "unexpected unnamed setting");
    }
    snprintf(name, sizeof(name), "%s%s%s", prefix, *prefix ? "." : "", sname);

    rd_module_t *m = NULL;
    int is_prefix;
    const rd_directive_t *d = rd_conf_find(level, name, &m, &is_prefix);

    if (d) {
        const char *saved = cf->name;
        const config_setting_t *saved_s = cf->setting;
        cf->name = name;
        cf->setting = s;
        const char *err = d->set(cf, s, d, ctx[m->index]);
        cf->name = saved;
        cf->setting = saved_s;
        if (err) {
            return rd_conf_error(cf, s, name, "%s", err);
        }
        if (cf->error) {
            return -1;
        }
        rd_conf_remember(cf, ctx, name, NULL, s);
        return 0;
    }

    if (is_prefix) {
        if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
            return rd_conf_error(cf, s, name, "must be a group { ... }");
        }
        for (int i = 0; i < config_setting_length(s); i++) {
            if (rd_conf_apply(cf, config_setting_get_elem(s, (unsigned)i),
                              level, ctx, name) != 0) {
                return -1;
            }
        }
        return 0;
    }

    return rd_conf_error(cf, s, name, "unknown directive");
}

int
rd_conf_apply_group(rd_conf_t *cf, const config_setting_t *g, unsigned level,
                    void **ctx)
{
    if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
        return rd_conf_error(cf, g, cf->name, "each element must be a "
                             "group { ... }");
    }
    /* A list element (listen, databases) is remembered as a whole too,
     * for errors about a directive it left to its default. */
    rd_conf_remember(cf, ctx, NULL, cf->name, g);
    void **saved = cf->ctx;
    cf->ctx = ctx;
    int rc = 0;
    for (int i = 0; i < config_setting_length(g) && rc == 0; i++) {
        rc = rd_conf_apply(cf, config_setting_get_elem(g, (unsigned)i), level,
                           ctx, "");
    }
    cf->ctx = saved;
    return rc;
}

void **
rd_conf_create_level(rd_conf_t *cf, unsigned level)
{
    void **ctx = rd_palloc(cf->pool, rd_nmodules * sizeof(void *));
    for (unsigned i = 0; i < rd_nmodules; i++) {
        if (rd_modules[i]->create_conf[level]) {
            ctx[i] = rd_modules[i]->create_conf[level](cf);
        }
    }
    return ctx;
}

int
rd_conf_init_level(rd_conf_t *cf, unsigned level, void **ctx,
                   const config_setting_t *where)
{
    void **saved = cf->ctx;
    cf->ctx = ctx;              /* for rd_conf_error_at() in the hooks */
    int rc = 0;
    for (unsigned i = 0; i < rd_nmodules && rc == 0; i++) {
        if (rd_modules[i]->init_conf[level] == NULL) {
            continue;
        }
        const char *err = rd_modules[i]->init_conf[level](cf, ctx[i]);
        if (err) {
            rc = rd_conf_error(cf, where, NULL, "%s", err);
        } else if (cf->error) {
            rc = -1;
        }
    }
    cf->ctx = saved;
    return rc;
}

int
rd_conf_read(rd_conf_t *cf, const char *path)
{
    config_t lc;
    int rc = -1;

    cf->file = rd_pstrdup(cf->pool, path);
    char *tmp = rd_pstrdup(cf->pool, path);
    cf->dir = rd_pstrdup(cf->pool, dirname(tmp));

    config_init(&lc);
    config_set_include_dir(&lc, cf->dir);
    config_set_options(&lc, 0);

    if (config_read_file(&lc, path) != CONFIG_TRUE) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO) {
            const char *f = config_error_file(&lc);
            cf->error = rd_psprintf(cf->pool, "%s: cannot read file: %s",
                                    f ? f : path, strerror(errno));
        } else {
            const char *f = config_error_file(&lc);
            cf->error = rd_psprintf(cf->pool, "%s:%d: %s",
                                    f ? f : path, config_error_line(&lc),
                                    config_error_text(&lc));
        }
        goto done;
    }

    const config_setting_t *root = config_root_setting(&lc);
    void **ctx = rd_conf_create_level(cf, RD_CONF_MAIN);
    cf->cycle->main_conf = ctx;

    if (rd_conf_apply_group(cf, root, RD_CONF_MAIN, ctx) != 0) {
        goto done;
    }
    if (rd_conf_init_level(cf, RD_CONF_MAIN, ctx, root) != 0) {
        goto done;
    }
    rc = 0;

done:
    config_destroy(&lc);
    return rc;
}

/* --- redoubt -T ------------------------------------------------------------ */

#define RD_CONF_DUMP_FILES 64

/* The files settings came from: the main file and those it included. */
static void
rd_conf_dump_files(const config_setting_t *s, const char **files,
                   size_t *nfiles)
{
    const char *f = config_setting_source_file(s);
    if (f) {
        size_t i;
        for (i = 0; i < *nfiles && strcmp(files[i], f) != 0; i++) {
        }
        if (i == *nfiles && *nfiles < RD_CONF_DUMP_FILES) {
            files[(*nfiles)++] = f;
        }
    }
    if (config_setting_is_aggregate(s)) {
        for (int i = 0; i < config_setting_length(s); i++) {
            rd_conf_dump_files(config_setting_get_elem(s, (unsigned)i),
                               files, nfiles);
        }
    }
}

int
rd_conf_dump(const char *path, FILE *out, char *err, size_t n)
{
    config_t lc;
    char *tmp = rd_strdup(path);
    const char *dir = dirname(tmp);

    config_init(&lc);
    config_set_include_dir(&lc, dir);
    config_set_options(&lc, 0);
    if (config_read_file(&lc, path) != CONFIG_TRUE) {
        const char *f = config_error_file(&lc);
        snprintf(err, n, "%s:%d: %s", f ? f : path, config_error_line(&lc),
                 config_error_text(&lc));
        config_destroy(&lc);
        free(tmp);
        return -1;
    }

    const char *files[RD_CONF_DUMP_FILES];
    size_t nfiles = 0;
    rd_conf_dump_files(config_root_setting(&lc), files, &nfiles);
    fprintf(out, "# configuration file %s:\n", path);
    for (size_t i = 0; i < nfiles; i++) {
        if (strcmp(files[i], path) != 0) {
            fprintf(out, "# with @include file %s expanded\n", files[i]);
        }
    }
    fprintf(out, "# (as redoubt read it: comments are not kept, relative "
            "paths are relative to %s)\n", dir);

    config_set_options(&lc, CONFIG_OPTION_SEMICOLON_SEPARATORS);
    config_set_tab_width(&lc, 2);
    config_write(&lc, out);
    config_destroy(&lc);
    free(tmp);
    if (fflush(out) != 0 || ferror(out)) {
        snprintf(err, n, "cannot write the configuration: %s",
                 strerror(errno));
        return -1;
    }
    return 0;
}
