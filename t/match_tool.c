/*
 * match_tool.c - rd_glob_match() from the command line, for the
 * differential test against redis-server (t/integration/t_match.sh).
 *
 * Reads lines from stdin; every pattern and subject is written in hex
 * (lower or upper case, empty for the empty string), so that any byte
 * can be given:
 *   s HEX           add a subject to the list
 *   p HEX           print one line: for every subject so far, in order,
 *                   '1' if the pattern matches it, else '0'
 *   m HEXPAT HEXS   print "1" or "0" for one pattern and one subject
 * Exit status 0, or 2 on a malformed line (with a message on stderr).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_match.h"

typedef struct {
    char   *data;
    size_t  len;
} bytes_t;

static int
hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decodes hex from *pp up to a space or the end; 0 on success. */
static int
unhex(const char **pp, bytes_t *out)
{
    const char *p = *pp;
    size_t n = strcspn(p, " ");

    if (n % 2 != 0) {
        return -1;
    }
    out->len = n / 2;
    out->data = malloc(out->len + 1);
    if (out->data == NULL) {
        return -1;
    }
    for (size_t i = 0; i < out->len; i++) {
        int hi = hexval((unsigned char)p[2 * i]);
        int lo = hexval((unsigned char)p[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(out->data);
            return -1;
        }
        out->data[i] = (char)(hi * 16 + lo);
    }
    *pp = p + n;
    return 0;
}

int
main(void)
{
    bytes_t *subj = NULL;
    size_t   nsubj = 0, cap = 0;
    char    *line = NULL;
    size_t   linecap = 0;
    ssize_t  n;
    unsigned long lineno = 0;
    int      rc = 0;
    char    *row = NULL;

    while ((n = getline(&line, &linecap, stdin)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
            line[--n] = '\0';
        }
        if (n == 0) {
            continue;
        }
        const char *p = line + 1;
        if (*p == ' ') {
            p++;
        }
        bytes_t a, b;
        switch (line[0]) {
        case 's':
            if (unhex(&p, &a) != 0) {
                goto bad;
            }
            if (*p != '\0') {
                free(a.data);
                goto bad;
            }
            if (nsubj == cap) {
                cap = cap ? 2 * cap : 1024;
                bytes_t *ns = realloc(subj, cap * sizeof(*subj));
                if (ns == NULL) {
                    free(a.data);
                    goto bad;
                }
                subj = ns;
            }
            subj[nsubj++] = a;
            break;
        case 'p': {
            if (unhex(&p, &a) != 0) {
                goto bad;
            }
            if (*p != '\0') {
                free(a.data);
                goto bad;
            }
            char *nr = realloc(row, nsubj + 2);
            if (nr == NULL) {
                free(a.data);
                goto bad;
            }
            row = nr;
            for (size_t i = 0; i < nsubj; i++) {
                row[i] = rd_glob_match(a.data, a.len, subj[i].data,
                                       subj[i].len) ? '1' : '0';
            }
            row[nsubj] = '\n';
            fwrite(row, 1, nsubj + 1, stdout);
            free(a.data);
            break;
        }
        case 'm':
            if (unhex(&p, &a) != 0) {
                goto bad;
            }
            if (*p != ' ') {
                free(a.data);
                goto bad;
            }
            p++;
            if (unhex(&p, &b) != 0) {
                free(a.data);
                goto bad;
            }
            if (*p != '\0') {
                free(a.data);
                free(b.data);
                goto bad;
            }
            puts(rd_glob_match(a.data, a.len, b.data, b.len) ? "1" : "0");
            free(a.data);
            free(b.data);
            break;
        default:
            goto bad;
        }
        continue;
bad:
        fprintf(stderr, "match_tool: line %lu: malformed\n", lineno);
        rc = 2;
        break;
    }

    for (size_t i = 0; i < nsubj; i++) {
        free(subj[i].data);
    }
    free(subj);
    free(row);
    free(line);
    if (fflush(stdout) != 0) {
        rc = 2;
    }
    return rc;
}
