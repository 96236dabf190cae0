/* The byte buffer: grows by doubling, slides its bytes to the front before
 * it grows. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf/buf.h"

int tf_buf_reserve(tf_buf *b, size_t room)
{
    size_t need, cap;
    uint8_t *p;

    if (tf_buf_room(b) >= room)
        return 0;
    if (b->off && b->cap - b->len >= room) {   /* slide the bytes to the front */
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
        return 0;
    }
    need = b->len + room;
    cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap *= 2;
    if (b->off) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
    }
    p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

void tf_buf_consume(tf_buf *b, size_t n)
{
    /* The tail stays where it is: a receive may be writing there. */
    b->off += n;
    b->len -= n;
}

void tf_buf_free(tf_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}
