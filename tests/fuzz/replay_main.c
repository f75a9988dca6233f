/*
 * Corpus replayer for builds without libFuzzer: feeds every regular file of
 * the directory given as argument to LLVMFuzzerTestOneInput, in name order,
 * so CTest keeps the fuzz corpora passing. Exits 1 on a missing or empty dir.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads a whole file into a new buffer (free with free()); -1 on error. */
static int read_file(const char *path, uint8_t **out, size_t *outlen)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;
    if (!f)
        goto done;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *nb = realloc(buf, cap);
            if (!nb)
                goto done;
            buf = nb;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0)
            break;
    }
    if (ferror(f))
        goto done;
    /* Exact size, so a sanitizer build catches reads past the input. */
    uint8_t *exact = realloc(buf, len ? len : 1);
    if (!exact)
        goto done;
    buf = exact;
    *out = buf;
    *outlen = len;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    if (f)
        fclose(f);
    return rc;
}

int main(int argc, char **argv)
{
    struct dirent **names = NULL;
    int n, ran = 0, rc = 1;
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 1;
    }
    n = scandir(argv[1], &names, NULL, alphasort);
    if (n < 0) {
        perror(argv[1]);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        uint8_t *data = NULL;
        size_t len = 0;
        snprintf(path, sizeof path, "%s/%s", argv[1], names[i]->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (read_file(path, &data, &len) != 0) {
            fprintf(stderr, "cannot read %s\n", path);
            goto done;
        }
        LLVMFuzzerTestOneInput(data, len);
        free(data);
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "%s: no corpus files\n", argv[1]);
        goto done;
    }
    printf("replayed %d file(s) from %s\n", ran, argv[1]);
    rc = 0;
done:
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}
