/*
 * getkeys_tool.c - print the key positions redoubt's command table gives,
 * for t/integration/t_getkeys.sh to compare with a real redis-server's
 * COMMAND GETKEYSANDFLAGS.
 *
 *   getkeys_tool [-t] [-n] < commands
 *   getkeys_tool -V
 *
 * stdin holds commands as RESP arrays of bulk strings ("*2\r\n$3\r\nGET\r\n
 * $1\r\nk\r\n"), one after the other. For each one, one line on stdout:
 *
 *   unknown                    rd_command_lookup() found no row
 *   <row> error                rd_command_keys_ex() returned -1
 *   <row> ok [<pos>:<flags>]...  the positions, in the order returned, each
 *                              with its RD_KS_* flags in hex
 *
 * where <row> is the row's name ("get", "object|encoding"). -t asks for
 * RD_KEYS_TOUCHED, -n for RD_KEYS_NOT_KEYS. Exit status 0, or 2 on a
 * malformed input (with a message on stderr). -V prints the Redis version
 * the table was generated from.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rd_command.h"

static unsigned char *in;
static size_t in_len, in_pos;

static void
die(const char *what)
{
    fprintf(stderr, "getkeys_tool: %s at input offset %zu\n", what, in_pos);
    exit(2);
}

static void
read_all(void)
{
    size_t cap = 1 << 16;

    in = malloc(cap);
    if (in == NULL) {
        die("out of memory");
    }
    for (;;) {
        if (in_len == cap) {
            cap *= 2;
            unsigned char *p = realloc(in, cap);
            if (p == NULL) {
                die("out of memory");
            }
            in = p;
        }
        ssize_t n = read(STDIN_FILENO, in + in_len, cap - in_len);
        if (n < 0) {
            die("read error");
        }
        if (n == 0) {
            return;
        }
        in_len += (size_t)n;
    }
}

/* "<c><decimal>\r\n" at in_pos; the number. */
static size_t
read_header(char c)
{
    size_t v = 0, digits = 0;

    if (in_pos >= in_len || in[in_pos] != c) {
        die(c == '*' ? "expected '*'" : "expected '$'");
    }
    in_pos++;
    while (in_pos < in_len && in[in_pos] >= '0' && in[in_pos] <= '9') {
        if (++digits > 9) {
            die("length too long");
        }
        v = v * 10 + (size_t)(in[in_pos++] - '0');
    }
    if (digits == 0 || in_len - in_pos < 2 || in[in_pos] != '\r'
        || in[in_pos + 1] != '\n') {
        die("malformed length");
    }
    in_pos += 2;
    return v;
}

int
main(int argc, char **argv)
{
    unsigned opts = 0;
    int ch;

    while ((ch = getopt(argc, argv, "tnV")) != -1) {
        switch (ch) {
        case 'V':
            puts(rd_command_table_version());
            return 0;
        case 't':
            opts |= RD_KEYS_TOUCHED;
            break;
        case 'n':
            opts |= RD_KEYS_NOT_KEYS;
            break;
        default:
            fprintf(stderr, "usage: getkeys_tool [-t] [-n] < commands | -V\n");
            return 2;
        }
    }

    read_all();
    while (in_pos < in_len) {
        size_t n = read_header('*');
        rd_str_t *args = calloc(n + 1, sizeof(*args));
        size_t *idx = calloc(n + 1, sizeof(*idx));
        uint32_t *kf = calloc(n + 1, sizeof(*kf));

        if (args == NULL || idx == NULL || kf == NULL) {
            die("out of memory");
        }
        for (size_t i = 0; i < n; i++) {
            size_t len = read_header('$');
            if (in_len - in_pos < len + 2 || in[in_pos + len] != '\r'
                || in[in_pos + len + 1] != '\n') {
                die("malformed bulk string");
            }
            args[i] = (rd_str_t){ (const char *)in + in_pos, len };
            in_pos += len + 2;
        }

        const rd_command_t *c = rd_command_lookup(n, args);
        if (c == NULL) {
            puts("unknown");
        } else {
            /* A first call with room for one key per argument, which is
             * enough unless positions repeat; then once more with room
             * for all of them. */
            size_t max = n + 1;
            int k = rd_command_keys_ex(c, n, args, opts, idx, kf, max);
            if (k > (int)max) {
                free(idx);
                free(kf);
                max = (size_t)k;
                idx = calloc(max, sizeof(*idx));
                kf = calloc(max, sizeof(*kf));
                if (idx == NULL || kf == NULL) {
                    die("out of memory");
                }
                k = rd_command_keys_ex(c, n, args, opts, idx, kf, max);
            }
            if (k < 0) {
                printf("%s error\n", c->name);
            } else {
                printf("%s ok", c->name);
                for (int i = 0; i < k; i++) {
                    printf(" %zu:%x", idx[i], (unsigned)kf[i]);
                }
                putchar('\n');
            }
        }
        free(args);
        free(idx);
        free(kf);
    }
    free(in);
    return fflush(stdout) == 0 ? 0 : 1;
}
