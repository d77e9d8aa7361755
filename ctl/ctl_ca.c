/*
 * ctl_ca.c - redoubtctl's keys and certificates (CA kinds, loading a CA,
 * new keys, X.509 building and signing), and "ca init" and "ca export".
 *
 * The helpers here are also what "cert server" and "cert user"
 * (ctl_cert.c) issue with. See redoubtctl.c for the whole tool.
 */

#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "rd_core.h"

#include "ctl.h"

/* --- keys and certificates --------------------------------------------- */

static const ctl_ca_kind_t ctl_ca_kinds[] = {
    { "user",      "user-ca",      "redoubt user CA" },
    { "db",        "db-ca",        "redoubt db CA" },
    { "db-client", "db-client-ca", "redoubt db-client CA" },
};

const ctl_ca_kind_t *
ctl_ca_kind(const char *type)
{
    for (size_t i = 0; i < rd_countof(ctl_ca_kinds); i++) {
        if (strcmp(ctl_ca_kinds[i].type, type) == 0) {
            return &ctl_ca_kinds[i];
        }
    }
    return NULL;
}

void
ctl_ca_free(ctl_ca_t *ca)
{
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    ca->cert = NULL;
    ca->key = NULL;
}

static int
ctl_ca_paths(const char *dir, const ctl_ca_kind_t *kind, ctl_ca_t *ca)
{
    char base[PATH_MAX];
    if (ctl_path(base, sizeof(base), dir, "/", kind->file) != 0
        || ctl_path(ca->crt_path, sizeof(ca->crt_path), base, ".crt", "") != 0
        || ctl_path(ca->key_path, sizeof(ca->key_path), base, ".key", "") != 0) {
        return -1;
    }
    return 0;
}

static int
ctl_ca_dir_ok(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        return ctl_fail("cannot use CA directory %s: %s", dir, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) {
        return ctl_fail("cannot use CA directory %s: not a directory", dir);
    }
    return 0;
}

/* Load a CA's certificate and key and check that they belong together. */
int
ctl_ca_load(const char *dir, const ctl_ca_kind_t *kind, ctl_ca_t *ca)
{
    memset(ca, 0, sizeof(*ca));
    if (ctl_ca_dir_ok(dir) != 0 || ctl_ca_paths(dir, kind, ca) != 0) {
        return -1;
    }
    char what[64];
    snprintf(what, sizeof(what), "%s CA certificate", kind->type);
    ca->cert = ctl_read_cert(what, ca->crt_path, false);
    if (ca->cert == NULL) {
        return -1;
    }
    snprintf(what, sizeof(what), "%s CA key", kind->type);
    ca->key = ctl_read_key(what, ca->key_path);
    if (ca->key == NULL) {
        ctl_ca_free(ca);
        return -1;
    }
    if (X509_check_ca(ca->cert) < 1) {
        ctl_ca_free(ca);
        return ctl_fail("%s is not a CA certificate", ca->crt_path);
    }
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        ctl_ca_free(ca);
        return ctl_fail("%s does not match %s", ca->key_path, ca->crt_path);
    }
    return 0;
}

static EVP_PKEY *
ctl_key_new(int rsa_bits, const char *curve)
{
    EVP_PKEY *k = rsa_bits > 0 ? EVP_RSA_gen((unsigned)rsa_bits)
                               : EVP_EC_gen(curve);
    if (k == NULL) {
        ctl_fail_ssl("cannot generate a key");
    }
    return k;
}

/* A new key of the CA key's type: the same curve, or as many RSA bits. */
EVP_PKEY *
ctl_key_like(const ctl_ca_t *ca)
{
    char group[80];
    size_t len = 0;
    switch (EVP_PKEY_get_base_id(ca->key)) {
    case EVP_PKEY_EC:
        if (!EVP_PKEY_get_group_name(ca->key, group, sizeof(group), &len)) {
            ctl_fail_ssl("%s: cannot read the curve", ca->key_path);
            return NULL;
        }
        return ctl_key_new(0, group);
    case EVP_PKEY_RSA:
        return ctl_key_new(EVP_PKEY_get_bits(ca->key) < 2048
                           ? 2048 : EVP_PKEY_get_bits(ca->key), NULL);
    default:
        ctl_fail("%s: unsupported key type (ECDSA and RSA are)", ca->key_path);
        return NULL;
    }
}

static bool
ctl_key_is_rsa(EVP_PKEY *k)
{
    return EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA;
}

/* A positive random 128-bit serial number. */
static int
ctl_set_serial(X509 *x)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1) {
        return ctl_fail_ssl("cannot make a serial number");
    }
    b[0] &= 0x7f;
    b[0] |= 0x01;               /* never zero, always 16 bytes long */
    BIGNUM *bn = BN_bin2bn(b, sizeof(b), NULL);
    int ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    return ok ? 0 : ctl_fail_ssl("cannot set the serial number");
}

/* A certificate with everything but extensions and signature. The issuer
 * is NULL for a self-signed one. */
X509 *
ctl_cert_new(const X509_NAME *subject, EVP_PKEY *key, X509 *issuer,
             time_t not_before, time_t not_after)
{
    X509 *x = X509_new();
    if (x == NULL) {
        ctl_fail_ssl("cannot make a certificate");
        return NULL;
    }
    const X509_NAME *iname = issuer ? X509_get_subject_name(issuer) : subject;
    if (!X509_set_version(x, X509_VERSION_3)
        || ctl_set_serial(x) != 0
        || !X509_set_subject_name(x, subject)
        || !X509_set_issuer_name(x, iname)
        || !ASN1_TIME_set(X509_getm_notBefore(x), not_before)
        || !ASN1_TIME_set(X509_getm_notAfter(x), not_after)
        || !X509_set_pubkey(x, key)) {
        ctl_fail_ssl("cannot make a certificate");
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Add an extension written as in openssl.cnf ("critical,CA:TRUE"). */
static int
ctl_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    memset(&ctx, 0, sizeof(ctx));
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    X509V3_set_ctx_nodb(&ctx);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (e == NULL || !X509_add_ext(x, e, -1)) {
        X509_EXTENSION_free(e);
        return ctl_fail_ssl("cannot add extension %s = %s", OBJ_nid2sn(nid),
                            value);
    }
    X509_EXTENSION_free(e);
    return 0;
}

/* The extensions of an end-entity certificate issued by ca. */
int
ctl_leaf_exts(X509 *x, const ctl_ca_t *ca, EVP_PKEY *key, const char *eku)
{
    const char *ku = ctl_key_is_rsa(key)
                     ? "critical,digitalSignature,keyEncipherment"
                     : "critical,digitalSignature";
    if (ctl_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE") != 0
        || ctl_ext(x, ca->cert, NID_key_usage, ku) != 0
        || ctl_ext(x, ca->cert, NID_ext_key_usage, eku) != 0
        || ctl_ext(x, ca->cert, NID_subject_key_identifier, "hash") != 0
        || ctl_ext(x, ca->cert, NID_authority_key_identifier,
                   "keyid,issuer") != 0) {
        return -1;
    }
    return 0;
}

int
ctl_san(X509 *x, const ctl_host_t *hosts, size_t n)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    int ok = gens != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_STRING *s = hosts[i].iplen ? ASN1_OCTET_STRING_new()
                                        : ASN1_IA5STRING_new();
        if (g == NULL || s == NULL) {
            GENERAL_NAME_free(g);
            ASN1_STRING_free(s);
            ok = 0;
            break;
        }
        if (hosts[i].iplen) {
            ok = ASN1_OCTET_STRING_set(s, hosts[i].ip, hosts[i].iplen);
        } else {
            ok = ASN1_STRING_set(s, hosts[i].text, -1);
        }
        GENERAL_NAME_set0_value(g, hosts[i].iplen ? GEN_IPADD : GEN_DNS, s);
        if (!ok || !sk_GENERAL_NAME_push(gens, g)) {
            GENERAL_NAME_free(g);
            ok = 0;
        }
    }
    if (ok) {
        ok = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
                               X509V3_ADD_DEFAULT) == 1;
    }
    GENERAL_NAMES_free(gens);
    return ok ? 0 : ctl_fail_ssl("cannot add the subjectAltName");
}

int
ctl_sign(X509 *x, EVP_PKEY *key)
{
    if (X509_sign(x, key, EVP_sha256()) <= 0) {
        return ctl_fail_ssl("cannot sign the certificate");
    }
    return 0;
}

/* Write PREFIX.key and PREFIX.crt, replacing older ones atomically. */
int
ctl_write_out(const char *prefix, EVP_PKEY *key, X509 *cert)
{
    char kpath[PATH_MAX], cpath[PATH_MAX];
    if (ctl_path(kpath, sizeof(kpath), prefix, ".key", "") != 0
        || ctl_path(cpath, sizeof(cpath), prefix, ".crt", "") != 0
        || ctl_write_pair(kpath, cpath, key, cert, true) != 0) {
        return -1;
    }
    printf("wrote %s and %s\n", cpath, kpath);
    return 0;
}

X509_NAME *
ctl_name_cn(const char *cn)
{
    X509_NAME *name = X509_NAME_new();
    if (name == NULL
        || !X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_UTF8STRING,
                                       (const unsigned char *)cn, -1, -1, 0)) {
        X509_NAME_free(name);
        ctl_fail_ssl("cannot make the subject name");
        return NULL;
    }
    return name;
}

/* --- ca init ----------------------------------------------------------- */

/* Make one CA: key and self-signed certificate. */
static int
ctl_ca_make(const char *dir, const ctl_ca_kind_t *kind, int rsa_bits,
            bool force)
{
    ctl_ca_t ca;
    memset(&ca, 0, sizeof(ca));
    if (ctl_ca_paths(dir, kind, &ca) != 0) {
        return -1;
    }
    time_t now = time(NULL);
    X509_NAME *name = NULL;
    int rc = -1;
    ca.key = ctl_key_new(rsa_bits, "P-256");
    if (ca.key != NULL) {
        name = ctl_name_cn(kind->cn);
    }
    if (name != NULL) {
        ca.cert = ctl_cert_new(name, ca.key, NULL, now - CTL_SKEW,
                               now + (time_t)CTL_CA_DAYS * CTL_DAY);
    }
    if (ca.cert != NULL
        && ctl_ext(ca.cert, NULL, NID_basic_constraints, "critical,CA:TRUE") == 0
        && ctl_ext(ca.cert, NULL, NID_key_usage,
                   "critical,keyCertSign,cRLSign") == 0
        && ctl_ext(ca.cert, NULL, NID_subject_key_identifier, "hash") == 0
        && ctl_sign(ca.cert, ca.key) == 0
        && ctl_write_pair(ca.key_path, ca.crt_path, ca.key, ca.cert,
                          force) == 0) {
        printf("%s CA: %s, key %s\n", kind->type, ca.crt_path, ca.key_path);
        rc = 0;
    }
    X509_NAME_free(name);
    ctl_ca_free(&ca);
    return rc;
}

/* Without --force, no file of any CA may exist yet. */
static int
ctl_ca_none_exist(const char *dir)
{
    for (size_t i = 0; i < rd_countof(ctl_ca_kinds); i++) {
        ctl_ca_t ca;
        if (ctl_ca_paths(dir, &ctl_ca_kinds[i], &ca) != 0) {
            return -1;
        }
        const char *paths[] = { ca.key_path, ca.crt_path };
        for (size_t j = 0; j < rd_countof(paths); j++) {
            struct stat st;
            if (lstat(paths[j], &st) == 0) {
                return ctl_fail("ca init: %s already exists (--force "
                                "replaces the CAs)", paths[j]);
            }
            if (errno != ENOENT) {
                return ctl_fail("ca init: %s: %s", paths[j], strerror(errno));
            }
        }
    }
    return 0;
}

/* Create dir (0700) unless it exists. *created tells which. */
static int
ctl_mkdir(const char *dir, bool *created)
{
    struct stat st;
    *created = false;
    if (mkdir(dir, 0700) == 0) {
        *created = true;
        return 0;
    }
    if (errno != EEXIST) {
        return ctl_fail("ca init: cannot create %s: %s", dir, strerror(errno));
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return ctl_fail("ca init: %s exists and is not a directory", dir);
    }
    return 0;
}

/* After a failed "ca init" without --force: remove the first n CAs, which
 * this run wrote, and the directory if this run made it. */
static void
ctl_ca_undo(const char *dir, bool created, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ctl_ca_t ca;
        if (ctl_ca_paths(dir, &ctl_ca_kinds[i], &ca) == 0) {
            unlink(ca.key_path);
            unlink(ca.crt_path);
        }
    }
    if (created) {
        rmdir(dir);
    }
}

int
cmd_ca_init(const char *cmd, int argc, char **argv)
{
    const char *rsa = NULL, *pos[1];
    bool force = false;
    int npos, rsa_bits = 0;
    const ctl_opt_t opts[] = {
        { "--rsa", &rsa, NULL },
        { "--force", NULL, &force },
        { NULL, NULL, NULL }
    };
    int rc = ctl_parse(cmd, argc, argv, opts, pos, 1, &npos);
    if (rc != 0) {
        return rc;
    }
    if (npos == 0) {
        return ctl_fail("%s: missing DIR", cmd);
    }
    if (rsa != NULL) {
        if (strcmp(rsa, "2048") != 0 && strcmp(rsa, "4096") != 0) {
            return ctl_fail("%s: bad --rsa '%s': expected 2048 or 4096", cmd,
                            rsa);
        }
        rsa_bits = atoi(rsa);
    }
    const char *dir = pos[0];
    bool created;
    if (ctl_mkdir(dir, &created) != 0) {
        return -1;
    }
    if (!force && ctl_ca_none_exist(dir) != 0) {
        return -1;
    }
    for (size_t i = 0; i < rd_countof(ctl_ca_kinds); i++) {
        if (ctl_ca_make(dir, &ctl_ca_kinds[i], rsa_bits, force) != 0) {
            if (!force) {
                ctl_ca_undo(dir, created, i);
            }
            return -1;
        }
    }
    return 0;
}

/* --- ca export --------------------------------------------------------- */

int
cmd_ca_export(const char *cmd, int argc, char **argv)
{
    const char *type = NULL, *dir = NULL, *pos[1];
    int npos;
    const ctl_opt_t opts[] = {
        { "--type", &type, NULL },
        { "--dir", &dir, NULL },
        { "--ca-dir", &dir, NULL },
        { NULL, NULL, NULL }
    };
    int rc = ctl_parse(cmd, argc, argv, opts, pos, 0, &npos);
    if (rc != 0) {
        return rc;
    }
    if (type == NULL) {
        return ctl_fail("%s: --type is required (user, db or db-client)", cmd);
    }
    const ctl_ca_kind_t *kind = ctl_ca_kind(type);
    if (kind == NULL) {
        return ctl_fail("%s: bad --type '%s': expected user, db or db-client",
                        cmd, type);
    }
    if (dir == NULL) {
        dir = ctl_default_ca_dir();
    }
    ctl_ca_t ca;
    memset(&ca, 0, sizeof(ca));
    if (ctl_ca_dir_ok(dir) != 0 || ctl_ca_paths(dir, kind, &ca) != 0) {
        return -1;
    }
    char what[64];
    snprintf(what, sizeof(what), "%s CA certificate", kind->type);
    X509 *x = ctl_read_cert(what, ca.crt_path, false);
    if (x == NULL) {
        return -1;
    }
    rc = PEM_write_X509(stdout, x) ? 0 : ctl_fail_ssl("cannot write the "
                                                      "certificate");
    X509_free(x);
    return rc;
}
