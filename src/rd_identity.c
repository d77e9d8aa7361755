/*
 * rd_identity.c - the identity of a session's user (rd_identity.h):
 * freeing and formatting it. Reading it from a certificate is the tls
 * module's (modules/tls/rd_cert_identity.c).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_core.h"
#include "rd_identity.h"

static void
rd_id_list_free(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(list[i]);
    }
    free(list);
}

void
rd_identity_free(rd_identity_t *id)
{
    if (id == NULL) {
        return;
    }
    free(id->user);
    rd_id_list_free(id->roles, id->nroles);
    rd_id_list_free(id->db_users, id->ndb_users);
    rd_id_list_free(id->db_names, id->ndb_names);
    free(id->route_db);
    free(id->route_db_user);
    memset(id, 0, sizeof(*id));
}

/* --- formatting -------------------------------------------------------- */

typedef struct {
    char   *buf;
    size_t  n;
    size_t  len;                /* bytes written, excluding the NUL */
} rd_id_out_t;

static void
rd_id_putc(rd_id_out_t *o, char c)
{
    if (o->len + 1 < o->n) {
        o->buf[o->len++] = c;
        o->buf[o->len] = '\0';
    }
}

static void
rd_id_puts(rd_id_out_t *o, const char *s)
{
    while (*s) {
        rd_id_putc(o, *s++);
    }
}

/* A value, with control characters escaped so that a log line stays one
 * line whatever a certificate holds. */
static void
rd_id_putv(rd_id_out_t *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '\\') {
            rd_id_putc(o, '\\');
            rd_id_putc(o, 'x');
            rd_id_putc(o, hex[*p >> 4]);
            rd_id_putc(o, hex[*p & 0xf]);
        } else {
            rd_id_putc(o, (char)*p);
        }
    }
}

static void
rd_id_put_list(rd_id_out_t *o, const char *label, char *const *list,
               size_t n)
{
    rd_id_putc(o, ' ');
    rd_id_puts(o, label);
    rd_id_puts(o, "=[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            rd_id_putc(o, ',');
        }
        rd_id_putv(o, list[i]);
    }
    rd_id_putc(o, ']');
}

void
rd_identity_format(const rd_identity_t *id, char *buf, size_t n)
{
    rd_id_out_t o = { buf, n, 0 };
    if (buf == NULL || n == 0) {
        return;
    }
    buf[0] = '\0';
    if (id == NULL) {
        return;
    }
    rd_id_putv(&o, id->user ? id->user : "?");
    rd_id_put_list(&o, "roles", id->roles, id->nroles);
    rd_id_put_list(&o, "db_users", id->db_users, id->ndb_users);
    rd_id_put_list(&o, "db_names", id->db_names, id->ndb_names);
    if (id->route_db != NULL || id->route_db_user != NULL) {
        rd_id_puts(&o, " route=");
        if (id->route_db != NULL) {
            rd_id_putv(&o, id->route_db);
        }
        if (id->route_db_user != NULL) {
            rd_id_putc(&o, '/');
            rd_id_putv(&o, id->route_db_user);
        }
    }
}
