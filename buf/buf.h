/* buf/ — a growable byte buffer: the bytes ring/ receives and sends, and
 * those handshake/ hands to and takes from GnuTLS.  No I/O, no GnuTLS. */
#ifndef TF_BUF_H
#define TF_BUF_H

#include <stddef.h>
#include <stdint.h>

/* The valid bytes are data[off, off + len); cap bytes are allocated. */
typedef struct tf_buf {
    uint8_t *data;
    size_t   off, len, cap;
} tf_buf;

int  tf_buf_reserve(tf_buf *b, size_t room);  /* room free bytes at the tail; 0 or -ENOMEM */
void tf_buf_consume(tf_buf *b, size_t n);
void tf_buf_free(tf_buf *b);
/* (An empty buffer may have no memory at all: no arithmetic on NULL.) */
static inline uint8_t *tf_buf_head(const tf_buf *b) { return b->data ? b->data + b->off : NULL; }
static inline uint8_t *tf_buf_tail(const tf_buf *b) { return b->data ? b->data + b->off + b->len : NULL; }
static inline size_t   tf_buf_room(const tf_buf *b) { return b->cap - b->off - b->len; }

#endif
