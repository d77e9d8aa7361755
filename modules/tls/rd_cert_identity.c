/*
 * rd_cert_identity.c - read and write the identity a certificate carries.
 *
 * The writer (redoubtctl) and the reader (redoubt's identify phase, and
 * "redoubtctl cert show") share this code, so the encoding described in
 * rd_cert_identity.h and redoubtctl(1) exists in one place only.
 *
 * The reader does not trust what it reads: a certificate may come from a
 * misconfigured or hostile issuer. It bounds the number of attributes and
 * values, the length of each value, and accepts only non-empty, valid
 * UTF-8 without NUL bytes.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "rd_core.h"
#include "rd_cert_identity.h"

#define RD_ID_MAX_VALUES   256      /* per kind: roles, db_users, db_names */
#define RD_ID_MAX_LEN      1024     /* bytes of one value */
#define RD_ID_MAX_ENTRIES  1024     /* attributes in a subject, all kinds */

typedef enum {
    RD_ID_USER = 0,
    RD_ID_ROLE,
    RD_ID_DB_USER,
    RD_ID_DB_NAME,
    RD_ID_ROUTE_DB,
    RD_ID_ROUTE_DB_USER,
    RD_ID_NKINDS,
    RD_ID_OTHER = -1
} rd_id_kind_t;

/* Indexed by rd_id_kind_t; the user is the CN, which has a NID. */
static const char *const rd_id_oids[RD_ID_NKINDS] = {
    NULL, RD_OID_ROLE, RD_OID_DB_USER, RD_OID_DB_NAME, RD_OID_ROUTE_DB,
    RD_OID_ROUTE_DB_USER
};

static const char *const rd_id_what[RD_ID_NKINDS] = {
    "user (CN)", "role", "db_users value", "db_names value",
    "route database", "route database user"
};

/* --- UTF-8 ------------------------------------------------------------- */

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF. NUL bytes are refused separately. */
static bool
rd_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t more;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            more = 1; cp = c & 0x1f; min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            more = 2; cp = c & 0x0f; min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            more = 3; cp = c & 0x07; min = 0x10000;
        } else {
            return false;
        }
        if (n - i <= more) {
            return false;
        }
        for (size_t k = 1; k <= more; k++) {
            unsigned char cc = s[i + k];
            if ((cc & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (cc & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += more + 1;
    }
    return true;
}

/* A value fit for the encoding: not empty, bounded, UTF-8, no NUL. */
static const char *
rd_id_value_problem(const unsigned char *s, size_t n)
{
    if (n == 0) {
        return "is empty";
    }
    if (n > RD_ID_MAX_LEN) {
        return "is too long";
    }
    if (memchr(s, '\0', n) != NULL) {
        return "contains a NUL byte";
    }
    if (!rd_utf8_valid(s, n)) {
        return "is not valid UTF-8";
    }
    return NULL;
}

/* --- reading ----------------------------------------------------------- */


static void
rd_id_list_push(char ***list, size_t *n, char *v)
{
    /* Grow in powers of two; *n is bounded by RD_ID_MAX_VALUES. */
    if ((*n & (*n - 1)) == 0) {
        *list = rd_realloc(*list, (*n ? *n * 2 : 1) * sizeof(char *));
    }
    (*list)[(*n)++] = v;
}

static rd_id_kind_t
rd_id_kind_of(const ASN1_OBJECT *obj, ASN1_OBJECT *const *oids)
{
    if (OBJ_obj2nid(obj) == NID_commonName) {
        return RD_ID_USER;
    }
    for (int k = RD_ID_ROLE; k < RD_ID_NKINDS; k++) {
        if (oids[k] != NULL && OBJ_cmp(obj, oids[k]) == 0) {
            return (rd_id_kind_t)k;
        }
    }
    return RD_ID_OTHER;
}

/* The value of one attribute of kind k, as a new C string, or NULL with
 * the reason in err. Our own attributes must be UTF8Strings; a CN may also
 * be a PrintableString or IA5String (ASCII), as other tools write them. */
static char *
rd_id_value(const ASN1_STRING *data, rd_id_kind_t k, char *err,
            size_t errlen)
{
    int type = ASN1_STRING_type(data);
    bool ok = type == V_ASN1_UTF8STRING
              || (k == RD_ID_USER && (type == V_ASN1_PRINTABLESTRING
                                      || type == V_ASN1_IA5STRING));
    if (!ok) {
        snprintf(err, errlen, "certificate %s is not a UTF8String",
                 rd_id_what[k]);
        return NULL;
    }
    const unsigned char *s = ASN1_STRING_get0_data(data);
    int len = ASN1_STRING_length(data);
    const char *problem = len < 0 ? "is invalid"
                          : rd_id_value_problem(s, (size_t)len);
    if (problem == NULL && type != V_ASN1_UTF8STRING) {
        for (int i = 0; i < len; i++) {
            if (s[i] >= 0x80) {
                problem = "is not ASCII";
                break;
            }
        }
    }
    if (problem != NULL) {
        snprintf(err, errlen, "certificate %s %s", rd_id_what[k], problem);
        return NULL;
    }
    return rd_strndup((const char *)s, (size_t)len);
}

/* Store value v (owned) of kind k in id. Returns 0 or -1 (v freed). */
static int
rd_id_store(rd_identity_t *id, rd_id_kind_t k, char *v, char *err,
            size_t errlen)
{
    char **single = NULL;
    char ***list = NULL;
    size_t *n = NULL;
    const char *many = NULL;

    switch (k) {
    case RD_ID_USER:          single = &id->user; many = "user (CN)"; break;
    case RD_ID_ROUTE_DB:      single = &id->route_db;
                              many = "route database"; break;
    case RD_ID_ROUTE_DB_USER: single = &id->route_db_user;
                              many = "route database user"; break;
    case RD_ID_ROLE:    list = &id->roles;    n = &id->nroles;    break;
    case RD_ID_DB_USER: list = &id->db_users; n = &id->ndb_users; break;
    case RD_ID_DB_NAME: list = &id->db_names; n = &id->ndb_names; break;
    default:
        free(v);
        return 0;
    }
    if (single != NULL) {
        if (*single != NULL) {
            snprintf(err, errlen, "certificate has more than one %s", many);
            free(v);
            return -1;
        }
        *single = v;
        return 0;
    }
    if (*n >= RD_ID_MAX_VALUES) {
        snprintf(err, errlen, "certificate has more than %d %ss",
                 RD_ID_MAX_VALUES, rd_id_what[k]);
        free(v);
        return -1;
    }
    rd_id_list_push(list, n, v);
    return 0;
}

static void
rd_id_oids_free(ASN1_OBJECT **oids)
{
    for (int k = 0; k < RD_ID_NKINDS; k++) {
        ASN1_OBJECT_free(oids[k]);
        oids[k] = NULL;
    }
}

static int
rd_id_oids_new(ASN1_OBJECT **oids)
{
    oids[RD_ID_USER] = NULL;
    for (int k = RD_ID_ROLE; k < RD_ID_NKINDS; k++) {
        oids[k] = OBJ_txt2obj(rd_id_oids[k], 1);
        if (oids[k] == NULL) {
            rd_id_oids_free(oids);
            return -1;
        }
    }
    return 0;
}

static int
rd_id_validity(X509 *cert, rd_identity_t *id, char *err, size_t errlen)
{
    struct tm tm;
    const ASN1_TIME *nb = X509_get0_notBefore(cert);
    const ASN1_TIME *na = X509_get0_notAfter(cert);

    memset(&tm, 0, sizeof(tm));
    if (nb == NULL || !ASN1_TIME_to_tm(nb, &tm)) {
        snprintf(err, errlen, "certificate has an invalid notBefore time");
        return -1;
    }
    id->not_before = timegm(&tm);
    memset(&tm, 0, sizeof(tm));
    if (na == NULL || !ASN1_TIME_to_tm(na, &tm)) {
        snprintf(err, errlen, "certificate has an invalid notAfter time");
        return -1;
    }
    id->not_after = timegm(&tm);
    return 0;
}

int
rd_identity_from_cert(X509 *cert, rd_identity_t *id, char *err,
                      size_t errlen)
{
    ASN1_OBJECT *oids[RD_ID_NKINDS];
    char dummy[1];

    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    memset(id, 0, sizeof(*id));
    const X509_NAME *name = cert ? X509_get_subject_name(cert) : NULL;
    if (name == NULL) {
        snprintf(err, errlen, "no certificate");
        return -1;
    }
    int count = X509_NAME_entry_count(name);
    if (count > RD_ID_MAX_ENTRIES) {
        snprintf(err, errlen, "certificate subject has more than %d "
                 "attributes", RD_ID_MAX_ENTRIES);
        return -1;
    }
    if (rd_id_oids_new(oids) != 0) {
        ERR_clear_error();
        snprintf(err, errlen, "cannot make the identity OIDs");
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < count && rc == 0; i++) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
        rd_id_kind_t k = rd_id_kind_of(X509_NAME_ENTRY_get_object(e), oids);
        if (k == RD_ID_OTHER) {
            continue;           /* O, OU, ...: not ours */
        }
        char *v = rd_id_value(X509_NAME_ENTRY_get_data(e), k, err, errlen);
        rc = v ? rd_id_store(id, k, v, err, errlen) : -1;
    }
    rd_id_oids_free(oids);
    if (rc == 0 && id->user == NULL) {
        snprintf(err, errlen, "certificate has no user (CN)");
        rc = -1;
    }
    if (rc == 0) {
        rc = rd_id_validity(cert, id, err, errlen);
    }
    if (rc != 0) {
        rd_identity_free(id);
    }
    return rc;
}

/* --- writing ----------------------------------------------------------- */

static bool
rd_id_ok(const char *v)
{
    return v != NULL
           && rd_id_value_problem((const unsigned char *)v, strlen(v)) == NULL;
}

static bool
rd_id_list_ok(char *const *list, size_t n)
{
    if (n > RD_ID_MAX_VALUES || (n > 0 && list == NULL)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!rd_id_ok(list[i])) {
            return false;
        }
    }
    return true;
}

/* Each value in its own RDN (set = -1: a new RDN at the end). */
static int
rd_id_add(X509_NAME *name, const ASN1_OBJECT *obj, const char *v)
{
    return X509_NAME_add_entry_by_OBJ(name, obj, V_ASN1_UTF8STRING,
                                      (const unsigned char *)v,
                                      (int)strlen(v), -1, 0) == 1 ? 0 : -1;
}

static int
rd_id_add_list(X509_NAME *name, const ASN1_OBJECT *obj, char *const *list,
               size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (rd_id_add(name, obj, list[i]) != 0) {
            return -1;
        }
    }
    return 0;
}

int
rd_identity_to_name(const rd_identity_t *id, X509_NAME *name)
{
    ASN1_OBJECT *oids[RD_ID_NKINDS];

    if (id == NULL || name == NULL || !rd_id_ok(id->user)
        || !rd_id_list_ok(id->roles, id->nroles)
        || !rd_id_list_ok(id->db_users, id->ndb_users)
        || !rd_id_list_ok(id->db_names, id->ndb_names)
        || (id->route_db != NULL && !rd_id_ok(id->route_db))
        || (id->route_db_user != NULL && !rd_id_ok(id->route_db_user))) {
        return -1;
    }
    if (rd_id_oids_new(oids) != 0) {
        ERR_clear_error();
        return -1;
    }
    int start = X509_NAME_entry_count(name);
    ASN1_OBJECT *cn = OBJ_nid2obj(NID_commonName);
    int rc = cn == NULL ? -1 : rd_id_add(name, cn, id->user);
    if (rc == 0) {
        rc = rd_id_add_list(name, oids[RD_ID_ROLE], id->roles, id->nroles);
    }
    if (rc == 0) {
        rc = rd_id_add_list(name, oids[RD_ID_DB_USER], id->db_users,
                            id->ndb_users);
    }
    if (rc == 0) {
        rc = rd_id_add_list(name, oids[RD_ID_DB_NAME], id->db_names,
                            id->ndb_names);
    }
    if (rc == 0 && id->route_db != NULL) {
        rc = rd_id_add(name, oids[RD_ID_ROUTE_DB], id->route_db);
    }
    if (rc == 0 && id->route_db_user != NULL) {
        rc = rd_id_add(name, oids[RD_ID_ROUTE_DB_USER], id->route_db_user);
    }
    rd_id_oids_free(oids);
    if (rc != 0) {
        /* Leave the name as it was. */
        for (int i = X509_NAME_entry_count(name) - 1; i >= start; i--) {
            X509_NAME_ENTRY_free(X509_NAME_delete_entry(name, i));
        }
        ERR_clear_error();
    }
    return rc;
}
