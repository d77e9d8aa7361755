/*
 * rd_conncmd.h - the commands that change a connection's state (AUTH,
 * HELLO, RESET, SELECT, CLIENT SETNAME, MULTI, EXEC, DISCARD, WATCH,
 * UNWATCH, QUIT), parsed once per request exactly as redis-server parses
 * them.
 *
 * The core parses every request after the decode phase and leaves the
 * result in r->conncmd; every module reads that, none parses argv again.
 * What redoubt believes about a session (its database user, whether a
 * transaction is open) is derived from these facts and from the real
 * replies, so it must agree with Redis byte for byte:
 *
 *  - AUTH password           user "default" (user_at 0, pass_at 1)
 *    AUTH user password      user argv[1]
 *    AUTH with more args     Redis answers "-ERR syntax error"
 *  - HELLO [protover [AUTH user pass] [SETNAME name]]
 *    The version is a strict integer (no sign, spaces or leading zeros,
 *    as Redis's string2ll); then options are walked in order: AUTH takes
 *    two words, SETNAME one, anything else (or too few words) is
 *    "Syntax error in HELLO option '<opt>'". Redis 7.0 applies each
 *    option as it walks (an AUTH takes effect before a later option
 *    fails), so a HELLO that Redis would half-apply is made impossible
 *    here: rd_conncmd_parse() marks it with an error that redoubt answers
 *    itself, never forwarding it. That covers every syntax error, a
 *    SETNAME name Redis refuses ("Client names cannot contain spaces,
 *    newlines or special characters.") and, redoubt's own rule, more than
 *    one AUTH option. A HELLO that is forwarded therefore either succeeds
 *    as a whole (the session runs as its AUTH user) or fails before any
 *    change (wrong version, wrong password).
 *
 * HELLO's option walk is also exposed (rd_hello_next) for the audit's
 * redaction, so that the positions of secrets are the ones Redis redacts.
 */
#ifndef RD_CONNCMD_H
#define RD_CONNCMD_H

#include "rd_core.h"

typedef enum {
    RD_CONN_NONE = 0,
    RD_CONN_AUTH,
    RD_CONN_HELLO,
    RD_CONN_RESET,
    RD_CONN_SELECT,
    RD_CONN_SETNAME,       /* CLIENT SETNAME */
    RD_CONN_MULTI,
    RD_CONN_EXEC,
    RD_CONN_DISCARD,
    RD_CONN_WATCH,
    RD_CONN_UNWATCH,
    RD_CONN_QUIT
} rd_conn_kind_t;

typedef enum {
    RD_CONN_OK = 0,
    RD_CONN_ERR_SYNTAX,        /* "ERR syntax error" (AUTH) */
    RD_CONN_ERR_HELLO_OPTION,  /* "ERR Syntax error in HELLO option '%s'" */
    RD_CONN_ERR_PROTOVER,      /* "ERR Protocol version is not an integer or out of range" */
    RD_CONN_ERR_NOPROTO,       /* "NOPROTO unsupported protocol version" */
    RD_CONN_ERR_NAME,          /* "ERR Client names cannot contain ..." */
    RD_CONN_ERR_MULTI_AUTH     /* redoubt: more than one AUTH option */
} rd_conn_error_t;

typedef struct {
    rd_conn_kind_t   kind;
    rd_conn_error_t  error;       /* RD_CONN_OK: Redis takes the syntax */
    size_t           error_at;    /* argv index the error names */
    size_t           user_at;     /* AUTH/HELLO AUTH: the user's argv index;
                                     0 with pass_at set: user "default" */
    size_t           pass_at;     /* 0: no credentials in this command */
    size_t           setname_at;  /* HELLO SETNAME / CLIENT SETNAME name */
    int              protover;    /* HELLO: 0 when not given */
    long long        db;          /* SELECT: the index, when it parses */
    unsigned         db_ok:1;     /* SELECT's index is an integer */
} rd_conncmd_t;

/* Fill cc for argv (argc >= 1). Commands that are not connection
 * commands get kind RD_CONN_NONE. */
void rd_conncmd_parse(rd_conncmd_t *cc, size_t argc, const rd_str_t *argv);

/* Does the command carry credentials (AUTH, HELLO ... AUTH)? */
static inline bool
rd_conncmd_has_auth(const rd_conncmd_t *cc)
{
    return (cc->kind == RD_CONN_AUTH || cc->kind == RD_CONN_HELLO)
           && cc->error == RD_CONN_OK && cc->pass_at != 0;
}

/* The user a valid AUTH or HELLO AUTH selects. */
rd_str_t rd_conncmd_user(const rd_conncmd_t *cc, const rd_str_t *argv);

/* Redis's error text for cc->error (without the leading '-'). */
void rd_conncmd_error_text(const rd_conncmd_t *cc, const rd_str_t *argv,
                           char *buf, size_t n);

/* Would Redis take this name (CLIENT SETNAME, HELLO SETNAME)? */
bool rd_client_name_ok(rd_str_t name);

/* Redis's string2ll: a strict decimal long long (rd_resp_string2ll). */
bool rd_str_to_ll(rd_str_t s, long long *v);

/* HELLO's options in Redis's order. Start with *pos = 2; each call
 * returns the option at *pos and moves *pos past it:
 *   RD_HELLO_AUTH     user at *pos-2, password at *pos-1
 *   RD_HELLO_SETNAME  name at *pos-1
 *   RD_HELLO_BAD      a syntax error at the option *pos (not moved)
 *   RD_HELLO_END      no more options */
typedef enum {
    RD_HELLO_END = 0,
    RD_HELLO_AUTH,
    RD_HELLO_SETNAME,
    RD_HELLO_BAD
} rd_hello_opt_t;

rd_hello_opt_t rd_hello_next(size_t argc, const rd_str_t *argv, size_t *pos);

#endif
