/*
 * rd_cert_identity.h - who a client certificate says its holder is.
 *
 * One piece of code reads and writes the identity in certificates, shared
 * by redoubt (reading, in the identify phase) and redoubtctl (writing, in
 * "cert user", and reading, in "cert show").
 *
 * Encoding, in the certificate's subject (documented in redoubtctl(1)):
 *   CN                                        the user name (required)
 *   2.25.93414321743527038502281803679313111139.1   a role (one per role)
 *   2.25.93414321743527038502281803679313111139.2   a db_users trait value
 *   2.25.93414321743527038502281803679313111139.3   a db_names trait value
 *   2.25.93414321743527038502281803679313111139.4   route: database name
 *   2.25.93414321743527038502281803679313111139.5   route: database user
 * Values are UTF8String attributes, each in its own RDN; repeated
 * attributes keep their order. The arc is a UUID-derived OID (X.667), so
 * it needs no registration and collides with nobody's.
 */
#ifndef RD_CERT_IDENTITY_H
#define RD_CERT_IDENTITY_H

#include <time.h>

#include <openssl/x509.h>

#include "rd_identity.h"

#define RD_IDENTITY_ARC "2.25.93414321743527038502281803679313111139"
#define RD_OID_ROLE           RD_IDENTITY_ARC ".1"
#define RD_OID_DB_USER        RD_IDENTITY_ARC ".2"
#define RD_OID_DB_NAME        RD_IDENTITY_ARC ".3"
#define RD_OID_ROUTE_DB       RD_IDENTITY_ARC ".4"
#define RD_OID_ROUTE_DB_USER  RD_IDENTITY_ARC ".5"


/* Read the identity of a certificate. Returns 0, or -1 with a reason in
 * err (e.g. "certificate has no user (CN)"). On success free it with
 * rd_identity_free(). Validity is copied, not checked. */
int  rd_identity_from_cert(X509 *cert, rd_identity_t *id, char *err,
                           size_t errlen);
/* Append the identity's attributes (CN first) to a subject name. Returns
 * 0 or -1 (a value that is empty or not valid UTF-8). */
int  rd_identity_to_name(const rd_identity_t *id, X509_NAME *name);

#endif
