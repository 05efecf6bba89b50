/* SPDX-License-Identifier: MIT */
#include <stdlib.h>

#include "macro.h"
#include "protocol.h"
#include "status-texts.h"
#include "versionkeys.h"

const char *const status_live_members[] = { "state", "job", "queue_length", "queue", "gate", NULL };

void status_texts_clear(status_texts *c) {
        for (size_t i = 0; i < c->n; i++)
                free(c->items[i].text);
        *c = (status_texts) {};
}

/* What a variant shows of the snapshot: a shallow copy (members are shared, never modified). */
static json_t *snapshot_view(json_t *snapshot, unsigned applied_last) {
        json_t *v = snapshot ? json_copy(snapshot) : json_object(), *applied;
        size_t n;

        if (!v)
                return NULL;
        for (size_t i = 0; status_live_members[i]; i++)
                (void) json_object_del(v, status_live_members[i]);
        applied = json_object_get(v, "applied");
        n = json_array_size(applied);
        if (applied_last > 0 && n > applied_last) {
                json_t *tail = json_array();
                for (size_t i = n - applied_last; tail && i < n; i++)
                        if (json_array_append(tail, json_array_get(applied, i)) < 0)
                                tail = (json_decref(tail), NULL);
                if (!tail || json_object_set_new(v, "applied", tail) < 0) {
                        json_decref(v);
                        return NULL;
                }
        }
        return v;
}

const char *status_texts_get(status_texts *c, json_t *snapshot, bool keys, const migration_format *format,
                             unsigned applied_last, size_t *ret_len) {
        status_text *t;
        json_t *v;
        char *text;
        size_t len;

        if (c->snapshot != snapshot) {
                status_texts_clear(c);
                c->snapshot = snapshot;
        }
        for (size_t i = 0; i < c->n; i++) {
                t = &c->items[i];
                if (t->keys == keys && t->format == format && t->applied_last == applied_last) {
                        *ret_len = t->len;
                        return t->text;
                }
        }
        v = snapshot_view(snapshot, applied_last);
        if (v && keys)
                v = versionkeys_reply(format, v);
        text = v ? protocol_encode_value(v, &len) : NULL;
        json_decref(v);
        if (!text)
                return NULL;
        if (c->n < STATUS_TEXTS_MAX)
                t = &c->items[c->n++];
        else {
                t = &c->items[c->next];
                c->next = (c->next + 1) % STATUS_TEXTS_MAX;
                free(t->text);
        }
        *t = (status_text) { .text = text, .len = len, .keys = keys, .format = format, .applied_last = applied_last };
        *ret_len = len;
        return text;
}
