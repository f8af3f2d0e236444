/* The stand-alone program of a C export (like TFLite's benchmark_model): no Python needed on a board.

   PROGRAM --inputs IN.f32 --outputs OUT.f32
       IN holds N stacked raw float32 inputs (NCHW, native = little-endian byte order); writes the N
       outputs stacked in the same way. The parity check runs this under qemu-user for ARM builds.
   PROGRAM [--warmup N] [--runs N] [--min-seconds S] [--rounds R]
       times dass_edge_run on a fixed pseudo-random input with the schedule of the Python runner's
       time_rounds (first call timed alone, N untimed warm-up calls, then R rounds of at least --runs calls
       AND --min-seconds of timed calls, the clock around the call only) and prints one JSON line with the
       runner's keys. Bad arguments print {"error": "..."} and exit with status 1.

   Built from model.c, model.h and this file; DASS_EDGE_COMPILER names the compiler, its version and flags.
*/
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "model.h"

#ifndef DASS_EDGE_COMPILER
#define DASS_EDGE_COMPILER "unknown"
#endif
#ifndef DASS_EDGE_AGENT_VERSION
#define DASS_EDGE_AGENT_VERSION 2
#endif

static float input_buffer[DASS_EDGE_INPUT_SIZE];
static float output_buffer[DASS_EDGE_OUTPUT_SIZE];

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void print_string(const char *text) {
    putchar('"');
    for (const unsigned char *c = (const unsigned char *)text; *c; ++c) {
        if (*c == '"' || *c == '\\') printf("\\%c", *c);
        else if (*c < 0x20) printf("\\u%04x", *c);
        else putchar(*c);
    }
    putchar('"');
}

static int fail(const char *message, const char *detail) {
    char text[512];
    snprintf(text, sizeof text, "%s%s", message, detail ? detail : "");
    printf("{\"error\": ");
    print_string(text);
    printf("}\n");
    return 1;
}

/* The CPU's name from /proc/cpuinfo (the keys the Python runner reads), else the machine. */
static void cpu_name(char *out, size_t size, const char *fallback) {
    static const char *keys[] = {"model name", "Hardware", "Processor", "cpu model"};
    char line[512];
    FILE *info = fopen("/proc/cpuinfo", "r");
    snprintf(out, size, "%s", fallback);
    if (!info) return;
    while (fgets(line, sizeof line, info)) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        size_t length = (size_t)(colon - line);
        while (length > 0 && (line[length - 1] == ' ' || line[length - 1] == '\t')) --length;
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; ++k) {
            if (length == strlen(keys[k]) && strncmp(line, keys[k], length) == 0) {
                char *value = colon + 1;
                while (*value == ' ' || *value == '\t') ++value;
                value[strcspn(value, "\r\n")] = '\0';
                snprintf(out, size, "%s", value);
                fclose(info);
                return;
            }
        }
    }
    fclose(info);
}

static void print_environment(void) {
    struct utsname name;
    char cpu[256], os[300];
    if (uname(&name) != 0) memset(&name, 0, sizeof name);
    snprintf(os, sizeof os, "%s %s", name.sysname, name.release);
    cpu_name(cpu, sizeof cpu, name.machine);
    printf("\"env\": {\"machine\": ");
    print_string(name.machine);
    printf(", \"os\": ");
    print_string(os);
    printf(", \"hostname\": ");
    print_string(name.nodename);
    printf(", \"cpu\": ");
    print_string(cpu);
    printf(", \"cores\": %ld}", sysconf(_SC_NPROCESSORS_ONLN));
}

/* Fixed pseudo-random input in [-1, 1): timings must not depend on the data or on the run. */
static void fixed_input(void) {
    unsigned int state = 12345u;
    for (int i = 0; i < DASS_EDGE_INPUT_SIZE; ++i) {
        state = state * 1664525u + 1013904223u;
        input_buffer[i] = (float)(state >> 8) / 8388608.0f - 1.0f;
    }
}

static int run_files(const char *in_path, const char *out_path) {
    FILE *in = fopen(in_path, "rb");
    if (!in) return fail("cannot open the inputs: ", strerror(errno));
    FILE *out = fopen(out_path, "wb");
    if (!out) {
        fclose(in);
        return fail("cannot open the outputs: ", strerror(errno));
    }
    size_t got, count = 0;
    while ((got = fread(input_buffer, sizeof(float), DASS_EDGE_INPUT_SIZE, in)) == DASS_EDGE_INPUT_SIZE) {
        dass_edge_run(input_buffer, output_buffer);
        fwrite(output_buffer, sizeof(float), DASS_EDGE_OUTPUT_SIZE, out);
        ++count;
    }
    fclose(in);
    if (fclose(out) != 0) return fail("cannot write the outputs: ", strerror(errno));
    if (got != 0 || count == 0) return fail("the inputs are not a whole number of input tensors", NULL);
    return 0;
}

typedef struct {
    long long *ns;
    size_t count, capacity;
} Round;

static int time_round(Round *round, long runs, double min_seconds) {
    long long total = 0, min_ns = (long long)(min_seconds * 1e9);
    round->count = 0;
    while ((long)round->count < (runs > 1 ? runs : 1) || total < min_ns) {
        if (round->count == round->capacity) {
            size_t capacity = round->capacity ? 2 * round->capacity : 256;
            long long *grown = realloc(round->ns, capacity * sizeof *grown);
            if (!grown) return 0;
            round->ns = grown;
            round->capacity = capacity;
        }
        long long t0 = now_ns();
        dass_edge_run(input_buffer, output_buffer);
        long long elapsed = now_ns() - t0;
        round->ns[round->count++] = elapsed;
        total += elapsed;
    }
    return 1;
}

static int parse_number(const char *text, double *value) {
    char *end;
    errno = 0;
    *value = strtod(text, &end);
    return errno == 0 && end != text && *end == '\0' && *value >= 0;
}

static void print_header(const char *program, long warmup) {
    const char *slash = strrchr(program, '/');
    printf("{\"agent_version\": %d, \"model\": ", DASS_EDGE_AGENT_VERSION);
    print_string(slash ? slash + 1 : program);
    printf(", \"runtime\": \"c\", \"runtime_version\": ");
    print_string(DASS_EDGE_COMPILER);
    printf(", \"runtime_device\": \"CPU\", \"threads\": 1, \"input_shape\": [%d, %d, %d, %d], ",
           dass_edge_input_shape[0], dass_edge_input_shape[1], dass_edge_input_shape[2], dass_edge_input_shape[3]);
    print_environment();
    printf(", \"warmup\": %ld", warmup);
}

static int time_model(const char *program, long warmup, long runs, double min_seconds, long rounds) {
    fixed_input();
    long long t0 = now_ns();
    dass_edge_run(input_buffer, output_buffer);
    long long first_ns = now_ns() - t0;
    for (long i = 0; i < warmup; ++i) dass_edge_run(input_buffer, output_buffer);
    Round round = {NULL, 0, 0};
    print_header(program, warmup);
    printf(", \"first_ns\": %lld, \"rounds_ns\": [", first_ns);
    for (long r = 0; r < (rounds > 1 ? rounds : 1); ++r) {
        if (!time_round(&round, runs, min_seconds)) return 1;
        printf("%s[", r ? ", " : "");
        for (size_t i = 0; i < round.count; ++i) printf("%s%lld", i ? ", " : "", round.ns[i]);
        printf("]");
    }
    printf("], \"timed_region\": \"host-to-host\"}\n");
    free(round.ns);
    return 0;
}

int main(int argc, char **argv) {
    const char *inputs = NULL, *outputs = NULL;
    double warmup = 10, runs = 100, min_seconds = 1.0, rounds = 1;
    for (int i = 1; i < argc; ++i) {
        const char *flag = argv[i];
        if (i + 1 >= argc) return fail("missing a value after ", flag);
        const char *value = argv[++i];
        if (strcmp(flag, "--inputs") == 0) inputs = value;
        else if (strcmp(flag, "--outputs") == 0) outputs = value;
        else if (strcmp(flag, "--warmup") == 0 && parse_number(value, &warmup)) continue;
        else if (strcmp(flag, "--runs") == 0 && parse_number(value, &runs)) continue;
        else if (strcmp(flag, "--min-seconds") == 0 && parse_number(value, &min_seconds)) continue;
        else if (strcmp(flag, "--rounds") == 0 && parse_number(value, &rounds)) continue;
        else return fail("bad argument: ", flag);
    }
    if (inputs || outputs) {
        if (!inputs || !outputs) return fail("--inputs and --outputs go together", NULL);
        return run_files(inputs, outputs);
    }
    return time_model(argv[0], (long)warmup, (long)runs, min_seconds, (long)rounds);
}
