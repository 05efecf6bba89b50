/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "worker.h"

typedef struct task {
        worker_fn fn;
        worker_fn done;
        void *userdata;
        struct task *next;
} task;

typedef struct task_list {
        task *head, *tail;
} task_list;

struct worker {
        struct event_base *base;
        struct event *wakeup; /* activated from the thread to run the posted callbacks */
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        task_list todo;   /* for the thread */
        task_list posted; /* for the loop */
        bool stopping;
        bool started;
        char name[16];
};

static void list_push(task_list *l, task *t) {
        t->next = NULL;
        if (l->tail)
                l->tail->next = t;
        else
                l->head = t;
        l->tail = t;
}

static task *list_pop(task_list *l) {
        task *t = l->head;

        if (t) {
                l->head = t->next;
                if (!l->head)
                        l->tail = NULL;
        }
        return t;
}

/* Runs on the loop thread: everything the worker posted since the last wakeup, in order. */
static void on_wakeup(evutil_socket_t fd, short what, void *userdata) {
        worker *w = userdata;
        task_list batch;

        pthread_mutex_lock(&w->lock);
        batch = w->posted;
        w->posted = (task_list) {};
        pthread_mutex_unlock(&w->lock);

        for (task *t; (t = list_pop(&batch));) {
                t->fn(t->userdata);
                free(t);
        }
}

static int post_locked(worker *w, worker_fn fn, void *userdata) {
        task *t = calloc(1, sizeof(*t));

        if (!t)
                return -ENOMEM;
        t->fn = fn;
        t->userdata = userdata;
        list_push(&w->posted, t);
        event_active(w->wakeup, EV_READ, 0);
        return 0;
}

int worker_post(worker *w, worker_fn fn, void *userdata) {
        int r;

        pthread_mutex_lock(&w->lock);
        r = post_locked(w, fn, userdata);
        pthread_mutex_unlock(&w->lock);
        return r;
}

static void *worker_main(void *userdata) {
        worker *w = userdata;

        pthread_setname_np(pthread_self(), w->name);
        for (;;) {
                task *t;

                pthread_mutex_lock(&w->lock);
                while (!w->todo.head && !w->stopping)
                        pthread_cond_wait(&w->cond, &w->lock);
                t = list_pop(&w->todo);
                pthread_mutex_unlock(&w->lock);
                if (!t)
                        break; /* stopping and nothing left */

                t->fn(t->userdata);
                if (t->done) {
                        /* the task struct travels back to the loop to run done */
                        pthread_mutex_lock(&w->lock);
                        t->fn = t->done;
                        list_push(&w->posted, t);
                        event_active(w->wakeup, EV_READ, 0);
                        pthread_mutex_unlock(&w->lock);
                } else
                        free(t);
        }
        return NULL;
}

int worker_new(struct event_base *base, const char *name, worker **ret) {
        worker *w;
        int r;

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->base = base;
        snprintf(w->name, sizeof(w->name), "%s", name);
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        w->wakeup = event_new(base, -1, 0, on_wakeup, w);
        if (!w->wakeup) {
                worker_free(w);
                return -ENOMEM;
        }
        r = pthread_create(&w->thread, NULL, worker_main, w);
        if (r != 0) {
                worker_free(w);
                return -r;
        }
        w->started = true;
        *ret = w;
        return 0;
}

int worker_submit(worker *w, worker_fn fn, worker_fn done, void *userdata) {
        task *t = calloc(1, sizeof(*t));

        if (!t)
                return -ENOMEM;
        t->fn = fn;
        t->done = done;
        t->userdata = userdata;
        pthread_mutex_lock(&w->lock);
        if (w->stopping) {
                pthread_mutex_unlock(&w->lock);
                free(t);
                return -ESHUTDOWN;
        }
        list_push(&w->todo, t);
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        return 0;
}

worker *worker_free(worker *w) {
        if (!w)
                return NULL;
        if (w->started) {
                pthread_mutex_lock(&w->lock);
                w->stopping = true;
                pthread_cond_signal(&w->cond);
                pthread_mutex_unlock(&w->lock);
                pthread_join(w->thread, NULL);
        }
        /* run what the thread posted last, so no completion is lost */
        on_wakeup(-1, 0, w);
        if (w->wakeup)
                event_free(w->wakeup);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w);
        return NULL;
}
