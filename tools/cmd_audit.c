/* fvlm audit: the annotators' workbench (audit/): the web app, its users,
 * the queues, and what the decisions say. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "accounts.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "deid.h"
#include "log.h"
#include "queue.h"
#include "queue_model.h"
#include "server.h"
#include "stats.h"

static const char *help =
    "usage: fvlm audit serve|user|queue|stats|export [options]\n\n"
    "The annotators' workbench: a local web app over the corpus in which\n"
    "annotators see each study's report beside its CT slices and anatomy masks,\n"
    "and accept, reject or add sentence-to-anatomy links, set statuses and\n"
    "labels, and flag studies. Every decision is one row of the `audits` table;\n"
    "the current ones win over parse and align on every re-run, and change the\n"
    "training texts, samples and labels the way align would have.\n\n"
    "  fvlm audit serve [--db FILE] [--bind ADDR] [--port N] [--threads N]\n"
    "                   [--public --cert PEM --key PEM]\n"
    "      serves the workbench (default http://127.0.0.1:8770/; --port 0: any free\n"
    "      port; --threads: server threads, default 4) until SIGINT or\n"
    "      SIGTERM. A non-loopback --bind needs --public; without --cert/--key it\n"
    "      is plain HTTP and a loud warning. FVLM_DEID_KEY (or --set deid.key)\n"
    "      enables search by original accession (the DICOM AccessionNumber,\n"
    "      archive name, StudyInstanceUID or CT-RATE volume name, as `fvlm key`\n"
    "      takes them); it must be the corpus's key, or the server does not start.\n"
    "  fvlm audit user add NAME [--role annotator|lead] [--db FILE]\n"
    "      prints the user's login token once (only a salted hash is stored)\n"
    "  fvlm audit user list [--json] [--db FILE]\n"
    "  fvlm audit user remove NAME [--db FILE]\n"
    "  fvlm audit queue --order flags|weakest|model|random --assign NAME[,NAME...]\n"
    "                   [--double F] [--seed N] [--limit N] [--split S] [--model M]\n"
    "      deals studies to annotators in that order (replacing their queues):\n"
    "      align's flags first, weakest links first, disagreement of model M's\n"
    "      zero-shot scores with the parsed labels, or a seeded random sample (the\n"
    "      one whose decisions estimate precision without bias); a fraction F of\n"
    "      the studies goes to two annotators, for agreement.\n"
    "  fvlm audit stats [--json] [--db FILE]\n"
    "      decisions per annotator and day, Cohen's kappa per decision kind,\n"
    "      precision of links and labels with 95% intervals, what remains\n"
    "  fvlm audit export --format jsonl|csv [--db FILE]\n"
    "      every decision on stdout\n\n"
    "common options:\n"
    "  --db FILE          corpus database (default corpus.db)\n"
    "  --set KEY=VALUE    configuration (deid.key for accession search)\n"
    "  --json             machine-readable output\n"
    "  --quiet / --verbose\n"
    "  --help             this help\n";

enum {
    OPT_BIND = OPT_FIRST_PRIVATE, OPT_PORT, OPT_PUBLIC, OPT_CERT, OPT_KEY, OPT_ROLE, OPT_ORDER,
    OPT_ASSIGN, OPT_DOUBLE, OPT_LIMIT, OPT_SPLIT, OPT_MODEL, OPT_FORMAT, OPT_THREADS
};

static const struct option all_opts[] = {
    CLI_COMMON_OPTIONS,
    {"bind", required_argument, 0, OPT_BIND},
    {"port", required_argument, 0, OPT_PORT},
    {"public", no_argument, 0, OPT_PUBLIC},
    {"cert", required_argument, 0, OPT_CERT},
    {"key", required_argument, 0, OPT_KEY},
    {"threads", required_argument, 0, OPT_THREADS},
    {"role", required_argument, 0, OPT_ROLE},
    {"order", required_argument, 0, OPT_ORDER},
    {"assign", required_argument, 0, OPT_ASSIGN},
    {"double", required_argument, 0, OPT_DOUBLE},
    {"seed", required_argument, 0, OPT_SEED},
    {"limit", required_argument, 0, OPT_LIMIT},
    {"split", required_argument, 0, OPT_SPLIT},
    {"model", required_argument, 0, OPT_MODEL},
    {"format", required_argument, 0, OPT_FORMAT},
    {0, 0, 0, 0},
};

typedef struct Args {
    CliCommon cli;
    const char *bind, *cert, *key, *role, *order, *assign, *split, *model, *format;
    long long port, seed, limit, threads;
    int public_ok;
    double doubled;
    int seen[OPT_THREADS + 1 - OPT_FIRST_PRIVATE];
} Args;

/* Parses the options of `fvlm audit SUB`; `allowed` lists the private
 * options SUB takes. Returns -1 with *code when the command must end. */
static int args_parse(Args *a, int argc, char **argv, const char *cmd, const int *allowed, int n,
                      int *code)
{
    memset(a, 0, sizeof *a);
    cli_common_init(&a->cli);
    a->port = 8770;
    a->seed = 1;
    int opt;
    while ((opt = cli_next_opt(&a->cli, argc, argv, all_opts, cmd, help, code)) != CLI_DONE) {
        if (opt == CLI_EXIT)
            return -1;
        int ok = 0;
        for (int i = 0; i < n; i++)
            ok |= allowed[i] == opt;
        if (!ok) {
            *code = cli_usage(cmd, "option --%s does not apply here", argv[optind - 1] + 2);
            return -1;
        }
        a->seen[opt - OPT_FIRST_PRIVATE] = 1;
        char *end;
        switch (opt) {
        case OPT_BIND: a->bind = optarg; break;
        case OPT_CERT: a->cert = optarg; break;
        case OPT_KEY: a->key = optarg; break;
        case OPT_ROLE: a->role = optarg; break;
        case OPT_ORDER: a->order = optarg; break;
        case OPT_ASSIGN: a->assign = optarg; break;
        case OPT_SPLIT: a->split = optarg; break;
        case OPT_MODEL: a->model = optarg; break;
        case OPT_FORMAT: a->format = optarg; break;
        case OPT_PUBLIC: a->public_ok = 1; break;
        case OPT_PORT:
            if (cli_parse_i64(optarg, 0, 65535, &a->port)) {
                *code = cli_usage(cmd, "--port expects 0 to 65535, got '%s'", optarg);
                return -1;
            }
            break;
        case OPT_THREADS:
            if (cli_parse_i64(optarg, 1, 32, &a->threads)) {
                *code = cli_usage(cmd, "--threads expects 1 to 32, got '%s'", optarg);
                return -1;
            }
            break;
        case OPT_SEED:
            if (cli_parse_i64(optarg, 0, INT64_MAX, &a->seed)) {
                *code = cli_usage(cmd, "--seed expects a non-negative integer, got '%s'", optarg);
                return -1;
            }
            break;
        case OPT_LIMIT:
            if (cli_parse_i64(optarg, 1, INT64_MAX, &a->limit)) {
                *code = cli_usage(cmd, "--limit expects a positive integer, got '%s'", optarg);
                return -1;
            }
            break;
        case OPT_DOUBLE:
            a->doubled = strtod(optarg, &end);
            if (end == optarg || *end || !(a->doubled >= 0 && a->doubled <= 1)) {
                *code = cli_usage(cmd, "--double expects a fraction in [0, 1], got '%s'", optarg);
                return -1;
            }
            break;
        default:
            *code = cli_usage(cmd, "unexpected option");
            return -1;
        }
    }
    FvErr e = {0};
    if (cli_common_finish(&a->cli, &e)) {
        cli_fail(&e);
        *code = EXIT_USAGE;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */

/* The signal that asks the server to stop (0 while none has). */
static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    g_stop = sig;
}

static int audit_serve(int argc, char **argv)
{
    static const int allowed[] = {OPT_BIND, OPT_PORT, OPT_PUBLIC, OPT_CERT, OPT_KEY, OPT_THREADS};
    Args a;
    int code;
    if (args_parse(&a, argc, argv, "audit serve", allowed, 6, &code))
        return code;
    if (optind < argc) {
        cli_common_free(&a.cli);
        return cli_usage("audit serve", "unexpected argument '%s'", argv[optind]);
    }
    const char *bind = a.bind ? a.bind : "127.0.0.1";
    if (!server_addr_is_loopback(bind) && !a.public_ok) {
        cli_common_free(&a.cli);
        return cli_usage("audit serve",
                         "--bind %s is not loopback: add --public (and --cert/--key for TLS)", bind);
    }
    if (!a.cert != !a.key) {
        cli_common_free(&a.cli);
        return cli_usage("audit serve", "--cert and --key go together");
    }
    /* The accession search key is optional: without it, search by id and key. */
    const char *deid = NULL;
    FvErr e = {0}, ke = {0};
    if (deid_key(&a.cli.config, &deid, &ke))
        deid = NULL;
    ServerOptions so = {
        .db_path = a.cli.db, .bind = bind, .port = (int)a.port, .public_ok = a.public_ok,
        .cert = a.cert, .key = a.key, .deid_key = deid, .threads = (int)a.threads,
        .argv = (const char *const *)argv, .argc = argc,
    };
    /* SIGINT and SIGTERM set a flag that this thread checks every 100 ms.
     * The kernel hands a process's signal to any thread that does not block
     * it, and some were started before main (OpenBLAS's pool): a handler
     * running there while this thread sat in pause() left the server up for
     * ever, and with the signal blocked here only, it killed the process. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    AuditServer *s = NULL;
    if (server_open(&s, &so, 1, &e)) {
        server_close(&s);
        cli_common_free(&a.cli);
        return cli_fail(&e);
    }
    if (!server_addr_is_loopback(bind) && !server_tls(s))
        fprintf(stderr,
                "fvlm audit: WARNING: serving on %s WITHOUT TLS: login tokens, session cookies\n"
                "fvlm audit: WARNING: and reports cross the network in clear text. Use --cert and\n"
                "fvlm audit: WARNING: --key, or bind to 127.0.0.1 and tunnel (ssh -L).\n",
                bind);
    int v6 = strchr(bind, ':') != NULL;
    printf("fvlm audit: serving %s on %s://%s%s%s:%d/ (Ctrl-C stops)\n", a.cli.db,
           server_tls(s) ? "https" : "http", v6 ? "[" : "", bind, v6 ? "]" : "", server_port(s));
    if (!deid)
        printf("fvlm audit: no FVLM_DEID_KEY: search by study id and key only, not by accession\n");
    fflush(stdout);
    /* Progress lines of per-decision re-alignment would flood the log. */
    if (log_get_level() == LOG_INFO)
        log_set_level(LOG_WARN);
    while (!g_stop) {
        struct timespec tick = {0, 100 * 1000 * 1000};
        nanosleep(&tick, NULL);
    }
    fprintf(stderr, "fvlm audit: stopping (%s)\n", g_stop == SIGINT ? "SIGINT" : "SIGTERM");
    server_close(&s);
    cli_common_free(&a.cli);
    return EXIT_OK;
}

static int audit_user(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "add") && strcmp(argv[1], "list") && strcmp(argv[1], "remove"))) {
        if (argc >= 2 && !strcmp(argv[1], "--help")) {
            fputs(help, stdout);
            return EXIT_OK;
        }
        return cli_usage("audit user", "expected add, list or remove");
    }
    const char *sub = argv[1];
    static const int allowed[] = {OPT_ROLE};
    Args a;
    int code;
    if (args_parse(&a, argc - 1, argv + 1, "audit user", allowed, !strcmp(sub, "add"), &code))
        return code;
    int want_name = strcmp(sub, "list") != 0;
    const char *name = optind < argc - 1 ? argv[1 + optind] : NULL;
    if ((want_name && (!name || optind + 1 < argc - 1)) || (!want_name && name)) {
        cli_common_free(&a.cli);
        return cli_usage("audit user", want_name ? "%s: give one user NAME" : "%s takes no NAME",
                         sub);
    }
    int role = ACC_ANNOTATOR;
    if (a.role && !strcmp(a.role, "lead"))
        role = ACC_LEAD;
    else if (a.role && strcmp(a.role, "annotator")) {
        cli_common_free(&a.cli);
        return cli_usage("audit user", "--role expects annotator or lead, got '%s'", a.role);
    }
    FvErr e = {0};
    Db *db = NULL;
    int rc = EXIT_FAIL;
    if (db_open(&db, a.cli.db, DB_MUST_EXIST, &e)) {
        cli_fail(&e);
        goto done;
    }
    if (!strcmp(sub, "add")) {
        char token[65];
        if (acc_add(db, name, role, token, &e)) {
            rc = e.code == FV_EUSAGE ? (cli_fail(&e), EXIT_USAGE) : cli_fail(&e);
            goto done;
        }
        if (a.cli.json)
            printf("{\"name\": \"%s\", \"role\": \"%s\", \"token\": \"%s\"}\n", name,
                   acc_role_name(role), token);
        else
            printf("user %s (%s) added. Login token (shown once; keep it secret):\n%s\n", name,
                   acc_role_name(role), token);
        explicit_bzero(token, sizeof token);
        rc = EXIT_OK;
    } else if (!strcmp(sub, "remove")) {
        if (acc_remove(db, name, &e)) {
            cli_fail(&e);
            goto done;
        }
        printf("user %s removed (their decisions stay)\n", name);
        rc = EXIT_OK;
    } else {
        Buf out = {0};
        if (acc_list(db, a.cli.json, &out, &e)) {
            buf_free(&out);
            cli_fail(&e);
            goto done;
        }
        if (!a.cli.json && out.len == 0)
            buf_puts(&out, "no users yet: fvlm audit user add NAME\n");
        rc = cli_write(&out);
    }
done:
    db_close(&db);
    cli_common_free(&a.cli);
    return rc;
}

static int audit_queue(int argc, char **argv)
{
    static const int allowed[] = {OPT_ORDER, OPT_ASSIGN, OPT_DOUBLE, OPT_SEED, OPT_LIMIT, OPT_SPLIT,
                                  OPT_MODEL};
    Args a;
    int code;
    if (args_parse(&a, argc, argv, "audit queue", allowed, 7, &code))
        return code;
    int order = a.order ? queue_order_parse(a.order) : -1;
    const char *bad = NULL;
    if (order < 0)
        bad = "--order expects flags, weakest, model or random";
    else if (!a.assign)
        bad = "--assign NAME[,NAME...] is required";
    else if (order == ORD_MODEL && !a.model)
        bad = "--order model needs --model M (a trained model.safetensors)";
    else if (order != ORD_MODEL && a.model)
        bad = "--model goes with --order model";
    else if (optind < argc)
        bad = "unexpected argument";
    if (bad) {
        cli_common_free(&a.cli);
        return cli_usage("audit queue", "%s", bad);
    }
    char *names = strdup(a.assign);
    char *who[64];
    int n_who = 0;
    for (char *t = names ? strtok(names, ",") : NULL; t && n_who < 64; t = strtok(NULL, ","))
        who[n_who++] = t;
    FvErr e = {0};
    Db *db = NULL;
    int rc = EXIT_FAIL;
    StudyScore *scores = NULL;
    int n_scores = 0;
    if (!names) {
        fprintf(stderr, "fvlm audit queue: out of memory\n");
        goto done;
    }
    if (db_open(&db, a.cli.db, DB_MUST_EXIST, &e)) {
        cli_fail(&e);
        goto done;
    }
    if (order == ORD_MODEL && queue_model_scores(db, a.model, a.split, &scores, &n_scores, &e)) {
        cli_fail(&e);
        goto done;
    }
    QueueSpec q = {(QueueOrder)order, who, n_who, a.doubled, (uint64_t)a.seed, a.limit, a.split,
                   scores, n_scores};
    QueueCounts c;
    if (queue_build(db, &q, &c, &e)) {
        rc = e.code == FV_EUSAGE ? (cli_fail(&e), EXIT_USAGE) : cli_fail(&e);
        goto done;
    }
    if (a.cli.json)
        printf("{\"order\": \"%s\", \"studies\": %lld, \"assigned\": %lld, \"doubled\": %lld}\n",
               queue_order_name((QueueOrder)order), (long long)c.studies, (long long)c.assigned,
               (long long)c.doubled);
    else
        printf("queue (%s): %lld studies dealt to %d annotator(s), %lld assignments, %lld studies "
               "given to two\n",
               queue_order_name((QueueOrder)order), (long long)c.studies, n_who,
               (long long)c.assigned, (long long)c.doubled);
    rc = EXIT_OK;
done:
    free(scores);
    free(names);
    db_close(&db);
    cli_common_free(&a.cli);
    return rc;
}

static int audit_stats_export(int argc, char **argv, int export)
{
    static const int allowed[] = {OPT_FORMAT};
    const char *cmd = export ? "audit export" : "audit stats";
    Args a;
    int code;
    if (args_parse(&a, argc, argv, cmd, allowed, export, &code))
        return code;
    if (optind < argc) {
        cli_common_free(&a.cli);
        return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
    }
    if (export && (!a.format || (strcmp(a.format, "jsonl") && strcmp(a.format, "csv")))) {
        cli_common_free(&a.cli);
        return cli_usage(cmd, "--format expects jsonl or csv");
    }
    FvErr e = {0};
    Db *db = NULL;
    Buf out = {0};
    int rc = EXIT_FAIL;
    if (db_open(&db, a.cli.db, DB_MUST_EXIST | DB_READONLY, &e) ||
        (export ? stats_export(db, !strcmp(a.format, "csv"), &out, &e)
                : stats_write(db, a.cli.json, &out, &e))) {
        buf_free(&out);
        cli_fail(&e);
    } else {
        if (!export && a.cli.json)
            buf_putc(&out, '\n');
        rc = cli_write(&out);
    }
    db_close(&db);
    cli_common_free(&a.cli);
    return rc;
}

int cmd_audit(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage("audit", "expected serve, user, queue, stats or export");
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        fputs(help, stdout);
        return EXIT_OK;
    }
    if (!strcmp(sub, "serve"))
        return audit_serve(argc - 1, argv + 1);
    if (!strcmp(sub, "user"))
        return audit_user(argc - 1, argv + 1);
    if (!strcmp(sub, "queue"))
        return audit_queue(argc - 1, argv + 1);
    if (!strcmp(sub, "stats"))
        return audit_stats_export(argc - 1, argv + 1, 0);
    if (!strcmp(sub, "export"))
        return audit_stats_export(argc - 1, argv + 1, 1);
    return cli_usage("audit", "'%s' is not an audit command (serve, user, queue, stats, export)",
                     sub);
}
