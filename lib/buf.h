/* buf: a growable byte buffer with checked growth.
 *
 * One owner: the Buf holds `data` until buf_free() or buf_steal(). data is
 * always NUL-terminated (not counted in len), so text can be used as a C
 * string. Functions return 0 or -1 when memory runs out; after a failure the
 * buffer keeps its old contents and `failed` is set, so a writer can append
 * many pieces and check once at the end. */
#ifndef FVLM_BUF_H
#define FVLM_BUF_H

#include <stddef.h>

typedef struct Buf {
    char *data;
    size_t len, cap;
    int failed;
} Buf;

int buf_reserve(Buf *b, size_t extra);

/* Growable arrays of any type: makes room for element n of the array whose
 * pointer is at pp (a T ** passed as void *; copied with memcpy) and whose
 * capacity is *cap. Nothing happens while n < *cap; at n == *cap the
 * capacity doubles (from `first` when it is 0). Returns 0, or -1 when memory
 * runs out or the array would pass INT_MAX elements or SIZE_MAX bytes; the
 * array and *cap are then unchanged. No message: the caller says what ran
 * out. */
int arr_reserve(void *pp, int *cap, int n, size_t elem, int first);
int buf_append(Buf *b, const void *p, size_t n);
int buf_puts(Buf *b, const char *s);
int buf_putc(Buf *b, char c);
int buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(Buf *b);          /* len = 0, keeps memory */
void buf_free(Buf *b);
char *buf_steal(Buf *b);         /* returns data (caller frees), empties b */

#endif
