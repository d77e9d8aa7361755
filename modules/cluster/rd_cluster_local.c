/*
 * rd_cluster_local.c - the commands client libraries send on connect and
 * the administrative commands, for a cluster database: redoubt answers
 * some itself, and spreads the others over the masters its own way.
 *
 * A client of a cluster database talks to one server: redoubt. What a
 * library asks about its connection is therefore answered about the
 * session, not about one of the session's node connections:
 *
 *   HELLO [2] [SETNAME n]  the server's map from a master's HELLO (its
 *                          version, its modules), with redoubt's client
 *                          id, mode "standalone" and role "master": the
 *                          library then treats the gateway as one server
 *   HELLO 2 AUTH u p ...   the same, after the HELLO ran on every node
 *                          connection of the session exactly as AUTH does
 *                          (RD_CK_AUTH: remembered for new connections;
 *                          Redis's error when a node refused it)
 *   CLIENT SETNAME/GETNAME/ID/SETINFO/INFO/LIST
 *                          the session's own state; CLIENT LIST shows this
 *                          session only
 *   CLIENT NO-EVICT/NO-TOUCH  sent to every node connection of the
 *                          session, and to each one it opens later
 *   SELECT 0, READONLY, READWRITE  +OK; SELECT n as Redis Cluster answers
 *
 * Spread over the masters (the first error reply of a node is the answer;
 * Redis's ACL decides on every node):
 *
 *   TIME, CONFIG GET, MEMORY MALLOC-STATS, LATENCY GRAPH/HISTOGRAM
 *                          one master
 *   CONFIG SET/RESETSTAT/REWRITE, SLOWLOG RESET, MEMORY PURGE
 *                          every master, +OK when all say +OK
 *   SLOWLOG LEN, LATENCY RESET  every master, the sum
 *   SLOWLOG GET [n]        every master's entries, newest first, n of them
 *   LATENCY LATEST         one row per event: the most recent sample over
 *                          the masters, and the largest maximum
 *   LATENCY HISTORY e      every master's samples, oldest first
 *   LATENCY/MEMORY DOCTOR  every master's report, each under its address
 *   MEMORY STATS           summed (largest for peaks, ratios, percentages)
 *   INFO [section ...]     merged (rd_cluster_info.c)
 *
 * The refusals (CLIENT KILL, ACL SETUSER, ...) are rows of the unsupported
 * table in rd_cluster.c, so that they also hold inside a transaction.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rd_cluster_int.h"
#include "rd_net.h"
#include "rd_resp.h"
#include "rd_session.h"

typedef struct rd_clocal_s rd_clocal_t;

struct rd_clocal_s {
    rd_buf_t    name;           /* CLIENT SETNAME, HELLO SETNAME */
    char       *user;           /* the last AUTH's user all nodes took
                                   (NULL: s->db_user) */
    rd_buf_t    lib_name;       /* CLIENT SETINFO */
    rd_buf_t    lib_ver;
    int         no_evict;       /* -1 never set, 0 off, 1 on */
    int         no_touch;
    rd_buf_t    replay;         /* sent first on new node connections */
};

static rd_clocal_t *
rd_clocal_get(rd_csess_t *cs)
{
    if (cs->local == NULL) {
        cs->local = rd_calloc(1, sizeof(*cs->local));
        cs->local->no_evict = -1;
        cs->local->no_touch = -1;
    }
    return cs->local;
}

void
rd_clocal_free(rd_csess_t *cs)
{
    rd_clocal_t *l = cs->local;
    if (l == NULL) {
        return;
    }
    rd_buf_free(&l->name);
    rd_buf_free(&l->lib_name);
    rd_buf_free(&l->lib_ver);
    rd_buf_free(&l->replay);
    free(l->user);
    free(l);
    cs->local = NULL;
}

/* Every node connection answered +RESET (RD_CK_AUTH's machinery). */
static int
rd_clocal_merge_reset(rd_creq_t *cr, rd_buf_t *out)
{
    for (size_t i = 0; i < cr->nparts; i++) {
        const rd_buf_t *b = &cr->parts[i].reply;
        if (rd_buf_used(b) != 8 || memcmp(rd_buf_rpos(b), "+RESET\r\n", 8)) {
            return -1;
        }
    }
    rd_buf_append(out, "+RESET\r\n", 8);
    return 0;
}

static int rd_clocal_spread(rd_csess_t *cs, rd_request_t *r,
                            rd_ckind_t kind, rd_creq_setup_pt setup,
                            rd_creq_merge_pt merge);

int
rd_clocal_reset(rd_csess_t *cs, rd_request_t *r)
{
    rd_clocal_t *l = cs->local;

    rd_cmulti_reset(cs);
    rd_cpubsub_reset(cs);
    if (l) {
        rd_buf_free(&l->name);
        rd_buf_free(&l->lib_name);
        rd_buf_free(&l->lib_ver);
        rd_buf_free(&l->replay);
        l->no_evict = -1;
        l->no_touch = -1;
        free(l->user);
        l->user = rd_strndup("default", 7);
    }
    return rd_clocal_spread(cs, r, RD_CK_AUTH, NULL, rd_clocal_merge_reset);
}

void
rd_clocal_replay(rd_csess_t *cs, rd_cconn_t *cc)
{
    if (cs->local && rd_buf_used(&cs->local->replay) > 0) {
        rd_upconn_send(&cc->uc, rd_buf_rpos(&cs->local->replay),
                       rd_buf_used(&cs->local->replay), &rd_cluster_discard);
    }
}

/*
 * The session's client id, unique in the gateway among the sessions that
 * are open: the worker's pid (unique among live processes, at most 2^22)
 * above the worker's session counter (24 bits, so that the id stays
 * below 2^53 for clients that read integers as doubles).
 */
uint64_t
rd_clocal_client_id(const rd_session_t *s)
{
    return ((uint64_t)getpid() << 24) | (s->id & 0xffffffu);
}

/* --- answering ----------------------------------------------------------- */

static int
rd_clocal_answer(rd_request_t *r, rd_buf_t *b)
{
    r->upstream = NULL;
    rd_request_reply_append(r, rd_buf_rpos(b), rd_buf_used(b));
    rd_buf_free(b);
    rd_request_done(r);
    return RD_DONE;
}

static int
rd_clocal_simple(rd_request_t *r, const char *s)
{
    rd_buf_t b = { 0 };
    rd_resp_encode_simple(&b, s);
    return rd_clocal_answer(r, &b);
}

/* Redis's arity error for a subcommand (its full name, as Redis 7). */
static int
rd_clocal_arity(rd_request_t *r, const char *name)
{
    rd_request_error(r, "ERR wrong number of arguments for '%s' command",
                     name);
    return RD_DONE;
}

/* --- nodes --------------------------------------------------------------- */

/* A master for a one-node command: the one used last, one the session is
 * connected to, the next in turn. -1 when none is known. */
static int
rd_clocal_master(rd_csess_t *cs)
{
    rd_ctopo_t *t = cs->topo;
    rd_msec_t now = t->worker->loop.now;

    if (cs->last_node >= 0 && (size_t)cs->last_node < t->nnodes
        && t->nodes[cs->last_node]->master
        && t->nodes[cs->last_node]->down_until <= now)
    {
        return cs->last_node;
    }
    for (size_t i = 0; i < cs->nconns && i < t->nnodes; i++) {
        if (cs->conns[i] && cs->conns[i]->uc.conn && t->nodes[i]->master
            && t->nodes[i]->down_until <= now)
        {
            return (int)i;
        }
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < t->nnodes; k++) {
            size_t i = (t->next_master + k) % t->nnodes;
            if (t->nodes[i]->master
                && (pass == 1 || t->nodes[i]->down_until <= now))
            {
                t->next_master = (unsigned)(i + 1);
                return (int)i;
            }
        }
    }
    return -1;
}

static int
rd_clocal_setup_master(rd_creq_t *cr)
{
    int node = rd_clocal_master(cr->cs);
    if (node < 0) {
        return -1;
    }
    rd_creq_parts(cr, 1);
    cr->parts[0].node = node;
    cr->r->upstream = cr->cs->topo->nodes[node]->text;
    return 0;
}

static int
rd_clocal_setup_masters(rd_creq_t *cr)
{
    rd_creq_all_masters(cr);
    return cr->nparts ? 0 : -1;
}

/* Every node connection of the session (one master when it has none),
 * as AUTH goes (rd_cluster.c). */
static int
rd_clocal_setup_conns(rd_creq_t *cr)
{
    rd_csess_t *cs = cr->cs;
    size_t n = 0;

    for (size_t i = 0; i < cs->nconns; i++) {
        n += cs->conns[i] && cs->conns[i]->uc.conn;
    }
    if (n == 0) {
        return rd_clocal_setup_master(cr);
    }
    rd_creq_parts(cr, n);
    size_t k = 0;
    for (size_t i = 0; i < cs->nconns; i++) {
        if (cs->conns[i] && cs->conns[i]->uc.conn) {
            cr->parts[k++].node = (int)i;
        }
    }
    cr->r->upstream = "(the session's nodes)";
    return 0;
}

/* The one part's reply, as it is. */
static int
rd_clocal_merge_first(rd_creq_t *cr, rd_buf_t *out)
{
    rd_buf_append(out, rd_buf_rpos(&cr->parts[0].reply),
                  rd_buf_used(&cr->parts[0].reply));
    return 0;
}

/* A request of the session for r, made by setup and merged by merge
 * (kind RD_CK_CUSTOM), or of another fan-out kind (setup NULL: every
 * master). A barrier: it is not confined to one slot. */
static int
rd_clocal_spread(rd_csess_t *cs, rd_request_t *r, rd_ckind_t kind,
                 rd_creq_setup_pt setup, rd_creq_merge_pt merge)
{
    rd_creq_t *cr = rd_creq_new(cs, r, kind, 0);
    cr->setup = setup;
    cr->merge = merge;
    cr->barrier = 1;
    if (kind != RD_CK_AUTH) {
        r->upstream = "(all masters)";
    }
    return rd_creq_submit(cr);
}

static int
rd_clocal_one_master(rd_csess_t *cs, rd_request_t *r)
{
    return rd_clocal_spread(cs, r, RD_CK_CUSTOM, rd_clocal_setup_master,
                            rd_clocal_merge_first);
}

/* --- HELLO --------------------------------------------------------------- */

/* HELLO's SETNAME name, or NULL. */
static const rd_str_t *
rd_clocal_hello_name(const rd_request_t *r)
{
    return r->conncmd.setname_at ? &r->argv[r->conncmd.setname_at] : NULL;
}

static void
rd_clocal_set_name(rd_csess_t *cs, const rd_str_t *name)
{
    rd_clocal_t *l = rd_clocal_get(cs);
    rd_buf_reset(&l->name);
    rd_buf_append(&l->name, name->data, name->len);
}

/* Every node accepted r's credentials: the session runs as its user. */
static void
rd_clocal_set_user(rd_csess_t *cs, const rd_request_t *r)
{
    rd_clocal_t *l = rd_clocal_get(cs);
    rd_str_t u = rd_conncmd_user(&r->conncmd, r->argv);
    free(l->user);
    l->user = rd_alloc(u.len + 1);
    memcpy(l->user, u.data, u.len);
    l->user[u.len] = '\0';
}

/* AUTH on every node connection (RD_CK_AUTH): +OK from all, as the
 * kind's own merge, and the user is remembered for CLIENT LIST. */
static int
rd_clocal_merge_auth(rd_creq_t *cr, rd_buf_t *out)
{
    const rd_buf_t *a = &cr->parts[0].reply;
    for (size_t i = 0; i < cr->nparts; i++) {
        const rd_buf_t *b = &cr->parts[i].reply;
        if (cr->parts[i].type != '+' || rd_buf_used(a) != rd_buf_used(b)
            || memcmp(rd_buf_rpos(a), rd_buf_rpos(b), rd_buf_used(b)) != 0)
        {
            return -1;
        }
    }
    rd_buf_append(out, rd_buf_rpos(a), rd_buf_used(a));
    rd_clocal_set_user(cr->cs, cr->r);
    return 0;
}

static void
rd_clocal_bulk_str(rd_buf_t *out, const char *s)
{
    rd_resp_encode_bulk(out, s, strlen(s));
}

/*
 * The node answered HELLO with its map; the client gets Redis 7's map
 * with the node's version and modules and redoubt's id, mode and role.
 */
static int
rd_clocal_merge_hello(rd_creq_t *cr, rd_buf_t *out)
{
    const rd_buf_t *rep = &cr->parts[0].reply;
    rd_resp_reader_t rd;
    rd_resp_value_t v, val;
    const char *version = NULL, *modules = NULL;
    size_t version_len = 0, modules_len = 0;

    rd_resp_reader_init(&rd, rd_buf_rpos(rep), rd_buf_used(rep));
    if (rd_resp_read(&rd, &v) != 0 || v.type != '*' || v.n < 0
        || v.n % 2 != 0)
    {
        return -1;
    }
    for (int64_t i = 0; i < v.n; i += 2) {
        if (rd_resp_read(&rd, &v) != 0 || (v.type != '$' && v.type != '+')
            || v.str == NULL)
        {
            return -1;
        }
        const char *start = rd.p;
        if (v.len == 7 && memcmp(v.str, "version", 7) == 0) {
            if (rd_resp_read(&rd, &val) != 0 || val.type != '$'
                || val.str == NULL)
            {
                return -1;
            }
            version = val.str;
            version_len = val.len;
            continue;
        }
        int is_modules = v.len == 7 && memcmp(v.str, "modules", 7) == 0;
        if (rd_resp_skip(&rd) != 0) {
            return -1;
        }
        if (is_modules) {
            modules = start;
            modules_len = (size_t)(rd.p - start);
        }
    }
    if (version == NULL) {
        return -1;
    }
    rd_resp_encode_array(out, 14);
    rd_clocal_bulk_str(out, "server");
    rd_clocal_bulk_str(out, "redis");
    rd_clocal_bulk_str(out, "version");
    rd_resp_encode_bulk(out, version, version_len);
    rd_clocal_bulk_str(out, "proto");
    rd_resp_encode_integer(out, 2);
    rd_clocal_bulk_str(out, "id");
    rd_resp_encode_integer(out,
                           (int64_t)rd_clocal_client_id(cr->cs->session));
    rd_clocal_bulk_str(out, "mode");
    rd_clocal_bulk_str(out, "standalone");
    rd_clocal_bulk_str(out, "role");
    rd_clocal_bulk_str(out, "master");
    rd_clocal_bulk_str(out, "modules");
    if (modules) {
        rd_buf_append(out, modules, modules_len);
    } else {
        rd_resp_encode_array(out, 0);
    }
    /* Every node took its AUTH: the user and the name are the
     * session's now. */
    const rd_str_t *name = rd_clocal_hello_name(cr->r);
    if (rd_conncmd_has_auth(&cr->r->conncmd)) {
        rd_clocal_set_user(cr->cs, cr->r);
        if (name) {
            rd_clocal_set_name(cr->cs, name);
        }
    }
    return 0;
}

/*
 * HELLO with an AUTH option changes the session's user: it goes to every
 * node connection of the session and becomes what new connections send
 * first, exactly as AUTH (RD_CK_AUTH, the command as the client sent it:
 * each node authenticates and answers its map, or its error); its
 * SETNAME takes effect with it. Without one, a master answers (its
 * NOAUTH when the session has not authenticated, as Redis), and the
 * SETNAME takes effect at once, as Redis applies it before it checks
 * that the client is authenticated (and so that a CLIENT GETNAME
 * pipelined behind it, answered here, sees it).
 */
static int
rd_clocal_hello(rd_csess_t *cs, rd_request_t *r)
{
    if (rd_conncmd_has_auth(&r->conncmd)) {
        return rd_clocal_spread(cs, r, RD_CK_AUTH, NULL,
                                rd_clocal_merge_hello);
    }
    const rd_str_t *name = rd_clocal_hello_name(r);
    if (name) {
        rd_clocal_set_name(cs, name);
    }
    return rd_clocal_spread(cs, r, RD_CK_CUSTOM, rd_clocal_setup_master,
                            rd_clocal_merge_hello);
}

/* --- CLIENT -------------------------------------------------------------- */

static void
rd_clocal_cat_bytes(rd_buf_t *b, const rd_buf_t *v)
{
    rd_buf_append(b, rd_buf_rpos(v), rd_buf_used(v));
}

/* One line of CLIENT LIST / CLIENT INFO for the session, in Redis 7.2's
 * order of fields; the buffers and memory fields Redis would show are
 * those of a session that is idle in Redis terms (redoubt's own buffers
 * are not Redis's). */
static void
rd_clocal_client_line(rd_csess_t *cs, rd_request_t *r, rd_buf_t *b)
{
    rd_session_t *s = cs->session;
    rd_clocal_t *l = rd_clocal_get(cs);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char laddr[80] = "";

    if (getsockname(s->conn->fd, (struct sockaddr *)&ss, &sl) == 0) {
        rd_sockaddr_text((struct sockaddr *)&ss, laddr, sizeof(laddr));
    }
    int64_t age = (s->worker->loop.now_usec - s->start_usec) / 1000000;
    /* Redis's letters: e no-evict, T no-touch (7.2), N none. */
    char flags[4] = "N";
    if (l->no_evict == 1 || l->no_touch == 1) {
        size_t k = 0;
        if (l->no_evict == 1) {
            flags[k++] = 'e';
        }
        if (l->no_touch == 1) {
            flags[k++] = 'T';
        }
        flags[k] = '\0';
    }
    rd_buf_appendf(b, "id=%llu addr=%s laddr=%s fd=%d name=",
                   (unsigned long long)rd_clocal_client_id(s), s->addr_text,
                   laddr, s->conn->fd);
    rd_clocal_cat_bytes(b, &l->name);
    rd_buf_appendf(b, " age=%lld idle=0 flags=%s db=0 sub=0 psub=0 ssub=0 "
                   "multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 "
                   "rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r "
                   "cmd=%s user=%s redir=-1 resp=2 lib-name=",
                   (long long)age, flags,
                   r->cmd ? r->cmd->name : "NULL",
                   l->user ? l->user
                           : s->db_user ? s->db_user : "default");
    rd_clocal_cat_bytes(b, &l->lib_name);
    rd_buf_append_str(b, " lib-ver=");
    rd_clocal_cat_bytes(b, &l->lib_ver);
    rd_buf_append_str(b, "\n");
}

/* CLIENT LIST [TYPE type] [ID id ...], as Redis 7.0 parses it. */
static int
rd_clocal_client_list(rd_csess_t *cs, rd_request_t *r)
{
    int mine = 1;
    rd_buf_t line = { 0 }, out = { 0 };

    if (r->argc == 4 && rd_str_eq_ci(r->argv[2], "type")) {
        rd_str_t t = r->argv[3];
        if (rd_str_eq_ci(t, "normal")) {
            mine = 1;
        } else if (rd_str_eq_ci(t, "slave") || rd_str_eq_ci(t, "replica")
                   || rd_str_eq_ci(t, "pubsub") || rd_str_eq_ci(t, "master"))
        {
            mine = 0;
        } else {
            rd_request_error(r, "ERR Unknown client type '%.*s'",
                             (int)strnlen(t.data, t.len), t.data);
            return RD_DONE;
        }
    } else if (r->argc > 3 && rd_str_eq_ci(r->argv[2], "id")) {
        uint64_t id = rd_clocal_client_id(cs->session);
        size_t n = 0;
        for (size_t j = 3; j < r->argc; j++) {
            int64_t v;
            if (!rd_resp_string2ll(r->argv[j].data, r->argv[j].len, &v)) {
                rd_request_error(r, "ERR Invalid client ID");
                return RD_DONE;
            }
            n += (uint64_t)v == id;
        }
        /* Redis lists a client once per time its id is named. */
        rd_clocal_client_line(cs, r, &line);
        for (size_t k = 0; k < n; k++) {
            rd_clocal_cat_bytes(&out, &line);
        }
        rd_buf_free(&line);
        rd_buf_t b = { 0 };
        rd_resp_encode_bulk(&b, rd_buf_rpos(&out), rd_buf_used(&out));
        rd_buf_free(&out);
        return rd_clocal_answer(r, &b);
    } else if (r->argc != 2) {
        rd_request_error(r, "ERR syntax error");
        return RD_DONE;
    }
    if (mine) {
        rd_clocal_client_line(cs, r, &out);
    }
    rd_buf_t b = { 0 };
    rd_resp_encode_bulk(&b, out.data ? rd_buf_rpos(&out) : "",
                        rd_buf_used(&out));
    rd_buf_free(&out);
    return rd_clocal_answer(r, &b);
}

/* CLIENT SETINFO LIB-NAME|LIB-VER value: Redis 7.2's answers (7.0 has no
 * such subcommand; libraries send it and ignore its error, but redoubt's
 * CLIENT LIST shows it). */
static int
rd_clocal_client_setinfo(rd_csess_t *cs, rd_request_t *r)
{
    rd_clocal_t *l = rd_clocal_get(cs);
    rd_buf_t *dst;

    if (r->argc != 4) {
        return rd_clocal_arity(r, "client|setinfo");
    }
    rd_str_t attr = r->argv[2], val = r->argv[3];
    /* Redis prints the C string: up to a NUL byte. */
    int alen = (int)strnlen(attr.data, attr.len);
    if (rd_str_eq_ci(attr, "lib-name")) {
        dst = &l->lib_name;
    } else if (rd_str_eq_ci(attr, "lib-ver")) {
        dst = &l->lib_ver;
    } else {
        rd_request_error(r, "ERR Unrecognized option '%.*s'", alen,
                         attr.data);
        return RD_DONE;
    }
    rd_str_t cval = { val.data, strnlen(val.data, val.len) };
    if (!rd_client_name_ok(cval)) {
        rd_request_error(r, "ERR %.*s cannot contain spaces, newlines or "
                         "special characters.", alen, attr.data);
        return RD_DONE;
    }
    rd_buf_reset(dst);
    rd_buf_append(dst, cval.data, cval.len);
    return rd_clocal_simple(r, "OK");
}

/* CLIENT NO-EVICT / NO-TOUCH went to every node connection: all took it,
 * so the session's new connections get it too. */
static int
rd_clocal_merge_flag(rd_creq_t *cr, rd_buf_t *out)
{
    rd_clocal_t *l = rd_clocal_get(cr->cs);
    rd_request_t *r = cr->r;

    for (size_t i = 0; i < cr->nparts; i++) {
        if (cr->parts[i].type != '+') {
            return -1;
        }
    }
    int on = rd_str_eq_ci(r->argv[2], "on");
    if (rd_str_eq_ci(r->argv[1], "no-evict")) {
        l->no_evict = on;
    } else {
        l->no_touch = on;
    }
    rd_buf_reset(&l->replay);
    if (l->no_evict >= 0) {
        rd_str_t a[3] = { RD_STR("CLIENT"), RD_STR("NO-EVICT"),
                          l->no_evict ? RD_STR("on") : RD_STR("off") };
        rd_resp_encode_command(&l->replay, 3, a);
    }
    if (l->no_touch >= 0) {
        rd_str_t a[3] = { RD_STR("CLIENT"), RD_STR("NO-TOUCH"),
                          l->no_touch ? RD_STR("on") : RD_STR("off") };
        rd_resp_encode_command(&l->replay, 3, a);
    }
    rd_resp_encode_simple(out, "OK");
    return 0;
}

static int
rd_clocal_client(rd_csess_t *cs, rd_request_t *r)
{
    rd_session_t *s = cs->session;
    rd_clocal_t *l = rd_clocal_get(cs);
    rd_buf_t b = { 0 };

    if (r->argc < 2) {
        return RD_DECLINED;     /* Redis's arity error */
    }
    rd_str_t sub = r->argv[1];
    if (rd_str_eq_ci(sub, "setname")) {
        if (r->argc != 3) {
            return rd_clocal_arity(r, "client|setname");
        }
        if (r->conncmd.error != RD_CONN_OK) {
            char msg[300];
            rd_conncmd_error_text(&r->conncmd, r->argv, msg, sizeof(msg));
            rd_request_error(r, "%s", msg);
            return RD_DONE;
        }
        rd_clocal_set_name(cs, &r->argv[2]);
        return rd_clocal_simple(r, "OK");
    }
    if (rd_str_eq_ci(sub, "getname")) {
        if (r->argc != 2) {
            return rd_clocal_arity(r, "client|getname");
        }
        if (rd_buf_used(&l->name) == 0) {
            rd_resp_encode_null(&b);
        } else {
            rd_resp_encode_bulk(&b, rd_buf_rpos(&l->name),
                                rd_buf_used(&l->name));
        }
        return rd_clocal_answer(r, &b);
    }
    if (rd_str_eq_ci(sub, "id")) {
        if (r->argc != 2) {
            return rd_clocal_arity(r, "client|id");
        }
        rd_resp_encode_integer(&b, (int64_t)rd_clocal_client_id(s));
        return rd_clocal_answer(r, &b);
    }
    if (rd_str_eq_ci(sub, "info")) {
        if (r->argc != 2) {
            return rd_clocal_arity(r, "client|info");
        }
        rd_buf_t line = { 0 };
        rd_clocal_client_line(cs, r, &line);
        rd_resp_encode_bulk(&b, rd_buf_rpos(&line), rd_buf_used(&line));
        rd_buf_free(&line);
        return rd_clocal_answer(r, &b);
    }
    if (rd_str_eq_ci(sub, "list")) {
        return rd_clocal_client_list(cs, r);
    }
    if (rd_str_eq_ci(sub, "setinfo")) {
        return rd_clocal_client_setinfo(cs, r);
    }
    if (rd_str_eq_ci(sub, "no-evict") || rd_str_eq_ci(sub, "no-touch")) {
        /* A wrong argument gets each node's own error. */
        if (r->argc == 3 && (rd_str_eq_ci(r->argv[2], "on")
                             || rd_str_eq_ci(r->argv[2], "off")))
        {
            return rd_clocal_spread(cs, r, RD_CK_CUSTOM,
                                    rd_clocal_setup_conns,
                                    rd_clocal_merge_flag);
        }
        return rd_clocal_one_master(cs, r);
    }
    /* CLIENT HELP, and subcommands Redis does not know: a node answers.
     * The ones that cannot work are refused by the filter. */
    return RD_DECLINED;
}

/* --- SELECT, READONLY, READWRITE ----------------------------------------- */

static int
rd_clocal_select(rd_request_t *r)
{
    const rd_conncmd_t *cc = &r->conncmd;

    if (r->argc != 2) {
        return rd_clocal_arity(r, "select");
    }
    if (!cc->db_ok) {
        rd_request_error(r, "ERR value is not an integer or out of range");
        return RD_DONE;
    }
    if (cc->db < -2147483648LL || cc->db > 2147483647LL) {
        rd_request_error(r, "ERR value is out of range, value must between "
                         "-2147483648 and 2147483647");
        return RD_DONE;
    }
    if (cc->db != 0) {
        rd_request_error(r, "ERR SELECT is not allowed in cluster mode");
        return RD_DONE;
    }
    return rd_clocal_simple(r, "OK");
}

/* --- SLOWLOG, LATENCY, MEMORY -------------------------------------------- */

typedef struct {
    const char *p;              /* the element's bytes */
    size_t      len;
    int64_t     a, b;           /* sort keys */
} rd_clocal_elem_t;

static int
rd_clocal_elem_newest(const void *x, const void *y)
{
    const rd_clocal_elem_t *e = x, *f = y;
    if (e->a != f->a) {
        return e->a > f->a ? -1 : 1;
    }
    return e->b > f->b ? -1 : e->b < f->b;
}

static int
rd_clocal_elem_oldest(const void *x, const void *y)
{
    return rd_clocal_elem_newest(y, x);
}

/*
 * Every part's array of arrays whose first two elements are integers
 * (SLOWLOG GET: id, time; LATENCY HISTORY: time, latency), as elements
 * with sort keys: SLOWLOG by time then id, HISTORY by time. -1 when a
 * reply is something else.
 */
static int
rd_clocal_elems(rd_creq_t *cr, int time_first, rd_clocal_elem_t **out,
                size_t *nout)
{
    rd_clocal_elem_t *e = NULL;
    size_t n = 0, cap = 0;

    for (size_t i = 0; i < cr->nparts; i++) {
        rd_resp_reader_t rd;
        rd_resp_value_t v, a, b;
        const rd_buf_t *rep = &cr->parts[i].reply;
        rd_resp_reader_init(&rd, rd_buf_rpos(rep), rd_buf_used(rep));
        if (rd_resp_read(&rd, &v) != 0 || v.type != '*' || v.n < 0) {
            goto bad;
        }
        for (int64_t k = 0; k < v.n; k++) {
            const char *start = rd.p;
            rd_resp_value_t ev;
            if (rd_resp_read(&rd, &ev) != 0 || ev.type != '*' || ev.n < 2
                || rd_resp_read(&rd, &a) != 0 || a.type != ':'
                || rd_resp_read(&rd, &b) != 0 || b.type != ':')
            {
                goto bad;
            }
            for (int64_t j = 2; j < ev.n; j++) {
                if (rd_resp_skip(&rd) != 0) {
                    goto bad;
                }
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                e = rd_realloc(e, cap * sizeof(*e));
            }
            e[n].p = start;
            e[n].len = (size_t)(rd.p - start);
            e[n].a = time_first ? a.n : b.n;
            e[n].b = time_first ? 0 : a.n;
            n++;
        }
    }
    *out = e;
    *nout = n;
    return 0;
bad:
    free(e);
    return -1;
}

/* SLOWLOG GET [count]: the newest count entries over the masters (each
 * keeps its own ids). */
static int
rd_clocal_merge_slowlog(rd_creq_t *cr, rd_buf_t *out)
{
    rd_request_t *r = cr->r;
    rd_clocal_elem_t *e;
    size_t n;
    int64_t count = 10;

    if (r->argc == 3
        && !rd_resp_string2ll(r->argv[2].data, r->argv[2].len, &count))
    {
        return -1;              /* the nodes took it: cannot happen */
    }
    if (rd_clocal_elems(cr, 0, &e, &n) != 0) {
        return -1;
    }
    if (n > 1) {
        qsort(e, n, sizeof(*e), rd_clocal_elem_newest);
    }
    if (count >= 0 && (uint64_t)count < n) {
        n = (size_t)count;
    }
    rd_resp_encode_array(out, (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        rd_buf_append(out, e[i].p, e[i].len);
    }
    free(e);
    return 0;
}

/* LATENCY HISTORY event: the samples of every master, oldest first. */
static int
rd_clocal_merge_history(rd_creq_t *cr, rd_buf_t *out)
{
    rd_clocal_elem_t *e;
    size_t n;

    if (rd_clocal_elems(cr, 1, &e, &n) != 0) {
        return -1;
    }
    if (n > 1) {
        qsort(e, n, sizeof(*e), rd_clocal_elem_oldest);
    }
    rd_resp_encode_array(out, (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        rd_buf_append(out, e[i].p, e[i].len);
    }
    free(e);
    return 0;
}

/* LATENCY LATEST: rows of event, time, latest, max; one row per event:
 * the latest sample of the masters and the largest max. */
static int
rd_clocal_merge_latest(rd_creq_t *cr, rd_buf_t *out)
{
    typedef struct {
        const char *name;
        size_t      len;
        int64_t     time, latest, max;
    } row_t;
    row_t *rows = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;

    for (size_t i = 0; i < cr->nparts; i++) {
        rd_resp_reader_t rd;
        rd_resp_value_t v, ev, name, t, lat, mx;
        const rd_buf_t *rep = &cr->parts[i].reply;
        rd_resp_reader_init(&rd, rd_buf_rpos(rep), rd_buf_used(rep));
        if (rd_resp_read(&rd, &v) != 0 || v.type != '*' || v.n < 0) {
            goto done;
        }
        for (int64_t k = 0; k < v.n; k++) {
            if (rd_resp_read(&rd, &ev) != 0 || ev.type != '*' || ev.n != 4
                || rd_resp_read(&rd, &name) != 0 || name.type != '$'
                || name.str == NULL
                || rd_resp_read(&rd, &t) != 0 || t.type != ':'
                || rd_resp_read(&rd, &lat) != 0 || lat.type != ':'
                || rd_resp_read(&rd, &mx) != 0 || mx.type != ':')
            {
                goto done;
            }
            size_t j;
            for (j = 0; j < n; j++) {
                if (rows[j].len == name.len
                    && memcmp(rows[j].name, name.str, name.len) == 0)
                {
                    break;
                }
            }
            if (j == n) {
                if (n == cap) {
                    cap = cap ? 2 * cap : 8;
                    rows = rd_realloc(rows, cap * sizeof(*rows));
                }
                rows[n++] = (row_t){ name.str, name.len, t.n, lat.n, mx.n };
                continue;
            }
            if (t.n > rows[j].time) {
                rows[j].time = t.n;
                rows[j].latest = lat.n;
            }
            if (mx.n > rows[j].max) {
                rows[j].max = mx.n;
            }
        }
    }
    rd_resp_encode_array(out, (int64_t)n);
    for (size_t j = 0; j < n; j++) {
        rd_resp_encode_array(out, 4);
        rd_resp_encode_bulk(out, rows[j].name, rows[j].len);
        rd_resp_encode_integer(out, rows[j].time);
        rd_resp_encode_integer(out, rows[j].latest);
        rd_resp_encode_integer(out, rows[j].max);
    }
    rc = 0;
done:
    free(rows);
    return rc;
}

/* LATENCY DOCTOR, MEMORY DOCTOR: each master's report under a line with
 * its address. */
static int
rd_clocal_merge_doctor(rd_creq_t *cr, rd_buf_t *out)
{
    rd_buf_t text = { 0 };

    for (size_t i = 0; i < cr->nparts; i++) {
        rd_resp_reader_t rd;
        rd_resp_value_t v;
        const rd_buf_t *rep = &cr->parts[i].reply;
        rd_resp_reader_init(&rd, rd_buf_rpos(rep), rd_buf_used(rep));
        if (rd_resp_read(&rd, &v) != 0 || (v.type != '$' && v.type != '+')
            || v.str == NULL)
        {
            rd_buf_free(&text);
            return -1;
        }
        int node = cr->parts[i].node;
        rd_buf_appendf(&text, "%s=== node %s ===\n", i ? "\n" : "",
                       node >= 0 ? cr->cs->topo->nodes[node]->text : "?");
        rd_buf_append(&text, v.str, v.len);
        if (v.len == 0 || v.str[v.len - 1] != '\n') {
            rd_buf_append_str(&text, "\n");
        }
    }
    rd_resp_encode_bulk(out, rd_buf_rpos(&text), rd_buf_used(&text));
    rd_buf_free(&text);
    return 0;
}

/*
 * MEMORY STATS: arrays of name, value pairs. Integer values and numbers
 * in bulk strings are added up (peaks too: the sum bounds the peak of
 * the whole), but the largest is kept for ratios and fragmentation;
 * keys.bytes-per-key, dataset.percentage and peak.percentage are
 * computed again from the sums; nested pairs arrays (db.N) the same way;
 * anything else is the first master's.
 */
typedef struct rd_cmstat_s rd_cmstat_t;
struct rd_cmstat_s {
    const char    *name;
    size_t         nlen;
    const char    *span;        /* the value's bytes */
    size_t         slen;
    char           type;
    int64_t        i;
    double         d;
    int            is_num;      /* 1 integer, 2 double in a bulk */
    rd_cmstat_t   *sub;         /* nested pairs */
    size_t         nsub;
};

static void
rd_cmstat_free(rd_cmstat_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rd_cmstat_free(m[i].sub, m[i].nsub);
    }
    free(m);
}

static int
rd_cmstat_parse(rd_resp_reader_t *rd, int64_t count, rd_cmstat_t **out,
                size_t *nout, unsigned depth)
{
    rd_cmstat_t *m = rd_calloc((size_t)count / 2 + 1, sizeof(*m));
    size_t n = 0;

    if (count % 2 != 0 || depth > 4) {
        free(m);
        return -1;
    }
    for (int64_t k = 0; k < count; k += 2) {
        rd_resp_value_t nm, v;
        if (rd_resp_read(rd, &nm) != 0 || (nm.type != '$' && nm.type != '+')
            || nm.str == NULL)
        {
            goto bad;
        }
        rd_cmstat_t *e = &m[n++];
        e->name = nm.str;
        e->nlen = nm.len;
        e->span = rd->p;
        if (rd_resp_read(rd, &v) != 0) {
            goto bad;
        }
        e->type = v.type;
        if (v.type == ':') {
            e->is_num = 1;
            e->i = v.n;
        } else if (v.type == '$' && v.str && v.len > 0 && v.len < 64) {
            char tmp[64], *end;
            memcpy(tmp, v.str, v.len);
            tmp[v.len] = '\0';
            e->d = strtod(tmp, &end);
            e->is_num = *end == '\0' && isfinite(e->d) ? 2 : 0;
        } else if (v.type == '*' && v.n > 0) {
            const char *save = rd->p;
            if (rd_cmstat_parse(rd, v.n, &e->sub, &e->nsub, depth + 1)
                != 0)
            {
                /* Not pairs: kept as they are. */
                rd->p = save;
                e->sub = NULL;
                e->nsub = 0;
                for (int64_t j = 0; j < v.n; j++) {
                    if (rd_resp_skip(rd) != 0) {
                        goto bad;
                    }
                }
            }
        }
        e->slen = (size_t)(rd->p - e->span);
    }
    *out = m;
    *nout = n;
    return 0;
bad:
    rd_cmstat_free(m, n);
    return -1;
}

static int
rd_cmstat_is_max(const char *name, size_t len)
{
    static const char *const words[] = { "ratio", "percentage",
                                         "fragmentation" };
    for (size_t w = 0; w < rd_countof(words); w++) {
        size_t wl = strlen(words[w]);
        for (size_t i = 0; i + wl <= len; i++) {
            if (memcmp(name + i, words[w], wl) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

/* The sum of the integer name over the maps. */
static double
rd_cmstat_sum(rd_cmstat_t **ms, size_t *ns, size_t nm, const char *name)
{
    size_t len = strlen(name);
    double v = 0;
    for (size_t k = 0; k < nm; k++) {
        for (size_t j = 0; j < ns[k]; j++) {
            if (ms[k][j].nlen == len && ms[k][j].is_num == 1
                && memcmp(ms[k][j].name, name, len) == 0)
            {
                v += (double)ms[k][j].i;
            }
        }
    }
    return v;
}

/* Merge the maps ms[0 .. nm) (each ns[k] entries) into out; top: the
 * outer map, where Redis's derived values are computed again from the
 * sums (as Redis computes them). */
static void
rd_cmstat_merge(rd_cmstat_t **ms, size_t *ns, size_t nm, rd_buf_t *out,
                int top)
{
    double net = rd_cmstat_sum(ms, ns, nm, "total.allocated")
                 - rd_cmstat_sum(ms, ns, nm, "startup.allocated");

    rd_cmstat_t *first = ms[0];
    rd_cmstat_t **same = rd_alloc(nm * sizeof(*same));

    rd_resp_encode_array(out, (int64_t)(2 * ns[0]));
    for (size_t i = 0; i < ns[0]; i++) {
        rd_cmstat_t *e = &first[i];
        size_t ns2 = 0;
        for (size_t k = 0; k < nm; k++) {
            for (size_t j = 0; j < ns[k]; j++) {
                rd_cmstat_t *f = &ms[k][j];
                if (f->nlen == e->nlen
                    && memcmp(f->name, e->name, e->nlen) == 0
                    && f->type == e->type && f->is_num == e->is_num
                    && (f->sub != NULL) == (e->sub != NULL))
                {
                    same[ns2++] = f;
                    break;
                }
            }
        }
        rd_resp_encode_bulk(out, e->name, e->nlen);
        int mx = rd_cmstat_is_max(e->name, e->nlen);
#define IS(lit) (e->nlen == sizeof(lit) - 1 \
                 && memcmp(e->name, lit, sizeof(lit) - 1) == 0)
        if (top && e->is_num == 1 && IS("keys.bytes-per-key")) {
            double keys = rd_cmstat_sum(ms, ns, nm, "keys.count");
            rd_resp_encode_integer(out, keys > 0 ? (int64_t)(net / keys) : 0);
        } else if (top && e->is_num == 2
                   && (IS("dataset.percentage") || IS("peak.percentage")))
        {
            double num = IS("dataset.percentage")
                         ? rd_cmstat_sum(ms, ns, nm, "dataset.bytes") : 0;
            double den = net;
            if (IS("peak.percentage")) {
                num = rd_cmstat_sum(ms, ns, nm, "total.allocated");
                den = rd_cmstat_sum(ms, ns, nm, "peak.allocated");
            }
            char tmp[64];
            int tl = snprintf(tmp, sizeof(tmp), "%.17g",
                              den > 0 ? num * 100 / den : 0);
            rd_resp_encode_bulk(out, tmp, (size_t)tl);
        } else if (e->is_num == 1) {
            int64_t v = e->i;
            for (size_t k = 1; k < ns2; k++) {
                v = mx ? (same[k]->i > v ? same[k]->i : v) : v + same[k]->i;
            }
            rd_resp_encode_integer(out, v);
        } else if (e->is_num == 2) {
            double v = e->d;
            for (size_t k = 1; k < ns2; k++) {
                v = mx ? (same[k]->d > v ? same[k]->d : v) : v + same[k]->d;
            }
            char tmp[64];
            int tl = snprintf(tmp, sizeof(tmp), "%.17g", v);
            rd_resp_encode_bulk(out, tmp, (size_t)tl);
        } else if (e->sub) {
            rd_cmstat_t **sm = rd_alloc(ns2 * sizeof(*sm));
            size_t *sn = rd_alloc(ns2 * sizeof(*sn));
            for (size_t k = 0; k < ns2; k++) {
                sm[k] = same[k]->sub;
                sn[k] = same[k]->nsub;
            }
            rd_cmstat_merge(sm, sn, ns2, out, 0);
            free(sm);
            free(sn);
        } else {
            rd_buf_append(out, e->span, e->slen);
        }
#undef IS
    }
    free(same);
}

static int
rd_clocal_merge_mstats(rd_creq_t *cr, rd_buf_t *out)
{
    rd_cmstat_t **ms = rd_calloc(cr->nparts, sizeof(*ms));
    size_t *ns = rd_calloc(cr->nparts, sizeof(*ns));
    int rc = -1;

    for (size_t i = 0; i < cr->nparts; i++) {
        rd_resp_reader_t rd;
        rd_resp_value_t v;
        const rd_buf_t *rep = &cr->parts[i].reply;
        rd_resp_reader_init(&rd, rd_buf_rpos(rep), rd_buf_used(rep));
        if (rd_resp_read(&rd, &v) != 0 || v.type != '*' || v.n <= 0
            || rd_cmstat_parse(&rd, v.n, &ms[i], &ns[i], 0) != 0)
        {
            goto done;
        }
    }
    rd_cmstat_merge(ms, ns, cr->nparts, out, 1);
    rc = 0;
done:
    for (size_t i = 0; i < cr->nparts; i++) {
        rd_cmstat_free(ms[i], ns[i]);
    }
    free(ms);
    free(ns);
    return rc;
}

/* --- the commands -------------------------------------------------------- */

/* How each administrative command is spread: RD_CK_DIRECT one master,
 * RD_CK_CUSTOM every master merged by merge, the other kinds every master
 * merged as the kind says. */
typedef struct {
    const char       *name;         /* its command table row */
    rd_ckind_t        kind;
    rd_creq_merge_pt  merge;
} rd_clocal_spread_t;

static const rd_clocal_spread_t rd_clocal_spreads[] = {
    { "time", RD_CK_DIRECT, NULL },
    { "info", RD_CK_CUSTOM, rd_cinfo_merge },
    { "config|get", RD_CK_DIRECT, NULL },
    { "config|set", RD_CK_ALLOK, NULL },
    { "config|resetstat", RD_CK_ALLOK, NULL },
    { "config|rewrite", RD_CK_ALLOK, NULL },
    { "slowlog|get", RD_CK_CUSTOM, rd_clocal_merge_slowlog },
    { "slowlog|len", RD_CK_SUM, NULL },
    { "slowlog|reset", RD_CK_ALLOK, NULL },
    { "latency|latest", RD_CK_CUSTOM, rd_clocal_merge_latest },
    { "latency|history", RD_CK_CUSTOM, rd_clocal_merge_history },
    { "latency|reset", RD_CK_SUM, NULL },
    { "latency|doctor", RD_CK_CUSTOM, rd_clocal_merge_doctor },
    { "latency|graph", RD_CK_DIRECT, NULL },
    { "latency|histogram", RD_CK_DIRECT, NULL },
    { "memory|stats", RD_CK_CUSTOM, rd_clocal_merge_mstats },
    { "memory|doctor", RD_CK_CUSTOM, rd_clocal_merge_doctor },
    { "memory|purge", RD_CK_ALLOK, NULL },
    { "memory|malloc-stats", RD_CK_DIRECT, NULL },
};

int
rd_clocal_route(rd_csess_t *cs, rd_request_t *r)
{
    if (r->argc == 0) {
        return RD_DECLINED;
    }
    switch (r->conncmd.kind) {
    case RD_CONN_AUTH:
        /* As rd_cluster_route sends it, with a merge that remembers the
         * user for CLIENT LIST (on a plaintext listener no module tracks
         * it in s->db_user). */
        if (r->conncmd.error == RD_CONN_OK && r->conncmd.pass_at) {
            return rd_clocal_spread(cs, r, RD_CK_AUTH, NULL,
                                    rd_clocal_merge_auth);
        }
        return RD_DECLINED;
    case RD_CONN_HELLO:
        return rd_clocal_hello(cs, r);
    case RD_CONN_SELECT:
        return rd_clocal_select(r);
    default:
        break;
    }
    rd_str_t c = r->argv[0];

    if (rd_str_eq_ci(c, "client")) {
        return rd_clocal_client(cs, r);
    }
    if (rd_str_eq_ci(c, "readonly") || rd_str_eq_ci(c, "readwrite")) {
        if (r->argc != 1) {
            return rd_clocal_arity(r, rd_str_eq_ci(c, "readonly")
                                      ? "readonly" : "readwrite");
        }
        return rd_clocal_simple(r, "OK");
    }
    if (r->cmd == NULL) {
        return RD_DECLINED;
    }
    /* The administrative commands spread over the masters, by their row
     * in the command table (the request's r->cmd: "config|get"). The
     * others (MEMORY USAGE key, the HELP subcommands, ...) route as any
     * command. */
    for (size_t i = 0; i < rd_countof(rd_clocal_spreads); i++) {
        const rd_clocal_spread_t *e = &rd_clocal_spreads[i];
        if (strcmp(r->cmd->name, e->name) != 0) {
            continue;
        }
        if (e->kind == RD_CK_DIRECT) {
            return rd_clocal_one_master(cs, r);
        }
        return rd_clocal_spread(cs, r, e->kind,
                                e->merge ? rd_clocal_setup_masters : NULL,
                                e->merge);
    }
    return RD_DECLINED;
}
