/*
 * ares.c -- gevent_c._ares: a small wrapper around one c-ares channel.
 *
 * This is its own extension module (no greenlet, no libuv).  It knows
 * nothing about the hub: gevent_c.resolver_ares drives it.
 *
 *   Channel(sock_state_cb, timeout=None, tries=None, ndots=None,
 *           udp_port=None, tcp_port=None, servers=None, flags=None,
 *           rotate=None)
 *
 * c-ares tells us which sockets to watch through sock_state_cb(fd,
 * readable, writable); the driver calls process_fd() when one is ready and
 * process_fd(-1, -1) when timeout() expires.  Each query method takes a
 * callback that is called exactly once with a Result (.value/.exception),
 * which is the link protocol a gevent_c Waiter understands.
 *
 * Re-entrancy.  Python code never runs while c-ares is in the middle of
 * an operation except sock_state_cb, and sock_state_cb may not call back
 * into the channel (RuntimeError).  Query callbacks are not called from
 * inside c-ares: each completion is converted to a Result at once (the
 * hostent/addrinfo is only valid there) and appended to a list owned by
 * the Channel method that entered c-ares; that method calls them, in
 * order, after c-ares has returned.  So a callback may freely start new
 * queries or destroy the channel, and a result is always delivered by the
 * call that produced it (for the resolver: in the hub, or synchronously
 * to the caller's own Waiter), never by an unrelated later call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include "compat.h"

#include <ares.h>
#include <arpa/inet.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

typedef struct {
    PyTypeObject *ResultType;
    PyTypeObject *ChannelType;
    PyObject *gaierror;
    PyObject *herror;
} ares_state;

static int ares_lib_initialized = 0;

/* ------------------------------------------------------------------ */
/* Result                                                              */
/* ------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *value;
    PyObject *exception;
} ResultObject;

static PyObject *
result_make(ares_state *st, PyObject *value, PyObject *exception)
{
    ResultObject *r = PyObject_GC_New(ResultObject, st->ResultType);
    if (r == NULL)
        return NULL;
    r->value = Py_NewRef(value ? value : Py_None);
    r->exception = Py_NewRef(exception ? exception : Py_None);
    PyObject_GC_Track(r);
    return (PyObject *)r;
}

static PyObject *
result_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"value", "exception", NULL};
    PyObject *value = Py_None, *exception = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:Result", kwlist, &value, &exception))
        return NULL;
    return result_make((ares_state *)PyType_GetModuleState(type), value, exception);
}

static int
result_traverse(ResultObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->value);
    Py_VISIT(self->exception);
    return 0;
}

static int
result_clear(ResultObject *self)
{
    Py_CLEAR(self->value);
    Py_CLEAR(self->exception);
    return 0;
}

static void
result_dealloc(ResultObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    result_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *
result_repr(ResultObject *self)
{
    if (self->exception && self->exception != Py_None)
        return PyUnicode_FromFormat("<Result exception=%R>", self->exception);
    return PyUnicode_FromFormat("<Result value=%R>", self->value ? self->value : Py_None);
}

static PyObject *
result_successful(ResultObject *self, PyObject *unused)
{
    return PyBool_FromLong(self->exception == NULL || self->exception == Py_None);
}

static PyObject *
result_get(ResultObject *self, PyObject *unused)
{
    if (self->exception && self->exception != Py_None) {
        PyErr_SetObject((PyObject *)Py_TYPE(self->exception), self->exception);
        return NULL;
    }
    return Py_NewRef(self->value ? self->value : Py_None);
}

static PyMemberDef result_members[] = {
    {"value", T_OBJECT, offsetof(ResultObject, value), READONLY,
     "The query's result (None if it failed)."},
    {"exception", T_OBJECT, offsetof(ResultObject, exception), READONLY,
     "None, or the exception the query failed with."},
    {NULL}
};

static PyMethodDef result_methods[] = {
    {"successful", (PyCFunction)result_successful, METH_NOARGS,
     "True if the query succeeded."},
    {"get", (PyCFunction)result_get, METH_NOARGS,
     "Return value, or raise exception."},
    {NULL}
};

static PyType_Slot result_slots[] = {
    {Py_tp_doc, "Result(value=None, exception=None): the outcome of one query, passed to\n"
                "its callback.  exception is None on success."},
    {Py_tp_new, result_new},
    {Py_tp_dealloc, result_dealloc},
    {Py_tp_traverse, result_traverse},
    {Py_tp_clear, result_clear},
    {Py_tp_repr, result_repr},
    {Py_tp_members, result_members},
    {Py_tp_methods, result_methods},
    {0, NULL}
};

static PyType_Spec result_spec = {
    .name = "gevent_c._ares.Result",
    .basicsize = sizeof(ResultObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = result_slots,
};

/* ------------------------------------------------------------------ */
/* Channel                                                             */
/* ------------------------------------------------------------------ */

enum { REQ_GAI, REQ_HERROR };   /* which exception family a query raises */

typedef struct Request Request;
typedef struct ChannelObject ChannelObject;

struct Request {
    Request *prev, *next;   /* in the channel's in-flight list, then in a DoneList */
    ChannelObject *chan;    /* borrowed: a channel outlives its queries */
    PyObject *callback;     /* strong; NULL once cleared by the GC */
    PyObject *result;       /* strong; set on completion */
    int errkind;            /* REQ_GAI or REQ_HERROR */
    int ai_flags;           /* getaddrinfo: the socket-module AI_* flags */
};

/* Completions collected during one c-ares call, delivered after it. */
typedef struct {
    Request *head;
    Request **tail;
} DoneList;

struct ChannelObject {
    PyObject_HEAD
    ares_channel channel;       /* NULL once destroyed */
    PyObject *sock_state_cb;
    Request *inflight;          /* queries c-ares still owns */
    Py_ssize_t npending;        /* queries whose callback has not been called */
    DoneList *done;             /* non-NULL while inside c-ares */
    PyObject *cb_exc;           /* first exception raised by sock_state_cb */
    int quiet;                  /* tearing down: call no Python code */
};

#define CHANNEL(o) ((ChannelObject *)(o))

static inline ares_state *
channel_state(ChannelObject *self)
{
    return (ares_state *)PyType_GetModuleState(Py_TYPE(self));
}

/* --- exceptions ---------------------------------------------------- */

static int
status_to_eai(int status)
{
    switch (status) {
    case ARES_ENOTFOUND:
    case ARES_ENONAME:
    case ARES_EBADNAME:
        return EAI_NONAME;
    case ARES_ENODATA:
#ifdef EAI_NODATA
        return EAI_NODATA;
#else
        return EAI_NONAME;
#endif
    case ARES_ETIMEOUT:
    case ARES_ESERVFAIL:
    case ARES_EREFUSED:
    case ARES_ECONNREFUSED:
        return EAI_AGAIN;
    case ARES_EBADFAMILY:
        return EAI_FAMILY;
    case ARES_EBADFLAGS:
    case ARES_EBADHINTS:
        return EAI_BADFLAGS;
    case ARES_ESERVICE:
        return EAI_SERVICE;
    case ARES_ENOMEM:
        return EAI_MEMORY;
    case ARES_EDESTRUCTION:
    case ARES_ECANCELLED:
#ifdef EAI_CANCELED
        return EAI_CANCELED;
#else
        return EAI_FAIL;
#endif
    default:
        return EAI_FAIL;
    }
}

static int
status_to_h_errno(int status)
{
    switch (status) {
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
    case ARES_ENONAME:
    case ARES_EBADNAME:
        return HOST_NOT_FOUND;
    case ARES_ETIMEOUT:
    case ARES_ESERVFAIL:
    case ARES_EREFUSED:
    case ARES_ECONNREFUSED:
    case ARES_EDESTRUCTION:
    case ARES_ECANCELLED:
        return TRY_AGAIN;
    default:
        return NO_RECOVERY;
    }
}

/* The exception instance for a failed query, shaped like the socket
 * module's: gaierror(EAI_*, gai_strerror()) or herror(h_errno, hstrerror()). */
static PyObject *
status_to_exception(ares_state *st, int errkind, int status)
{
    if (errkind == REQ_HERROR) {
        int code = status_to_h_errno(status);
        return PyObject_CallFunction(st->herror, "is", code, hstrerror(code));
    }
    int code = status_to_eai(status);
    return PyObject_CallFunction(st->gaierror, "is", code, gai_strerror(code));
}


/* Keep the first of several errors; report the others as unraisable. */
static void
keep_first_error(PyObject **first, PyObject *exc, PyObject *where)
{
    if (exc == NULL)
        return;
    if (*first == NULL) {
        *first = exc;
        return;
    }
    PyErr_SetRaisedException(exc);
    PyErr_WriteUnraisable(where);
}

/* --- requests ------------------------------------------------------ */

static Request *
request_new(ChannelObject *self, PyObject *callback, int errkind)
{
    Request *r = PyMem_Calloc(1, sizeof(Request));
    if (r == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    r->chan = self;
    r->callback = Py_NewRef(callback);
    r->errkind = errkind;
    r->next = self->inflight;
    if (r->next)
        r->next->prev = r;
    self->inflight = r;
    self->npending++;
    return r;
}

static void
request_unlink(Request *r)
{
    ChannelObject *self = r->chan;
    if (r->prev)
        r->prev->next = r->next;
    else if (self->inflight == r)
        self->inflight = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void
request_free(Request *r)
{
    Py_XDECREF(r->callback);
    Py_XDECREF(r->result);
    PyMem_Free(r);
}

/* A query ended: park it, with its Result, for delivery after c-ares
 * returns.  Steals value and exception (either may be NULL). */
static void
request_complete(Request *r, PyObject *value, PyObject *exception)
{
    ChannelObject *self = r->chan;
    request_unlink(r);
    if (!self->quiet && r->callback != NULL) {
        r->result = result_make(channel_state(self), value, exception);
        if (r->result == NULL) {
            /* No memory for the Result: deliver the MemoryError instead. */
            PyObject *exc = PyErr_GetRaisedException();
            r->result = exc;   /* delivery notices it is not a Result */
        }
    }
    Py_XDECREF(value);
    Py_XDECREF(exception);
    if (self->done) {
        *self->done->tail = r;
        self->done->tail = &r->next;
    }
    else {  /* c-ares called back outside our calls: should not happen */
        self->npending--;
        request_free(r);
    }
}

/* --- entering and leaving c-ares ------------------------------------ */

static int
channel_check_usable(ChannelObject *self)
{
    if (self->channel == NULL) {
        PyErr_SetString(PyExc_ValueError, "channel is destroyed");
        return -1;
    }
    if (self->done != NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Channel methods cannot be called from its sock_state_cb");
        return -1;
    }
    return 0;
}

static int
channel_enter(ChannelObject *self, DoneList *done)
{
    if (channel_check_usable(self) < 0)
        return -1;
    done->head = NULL;
    done->tail = &done->head;
    self->done = done;
    Py_INCREF(self);
    return 0;
}

/* Leave c-ares: call the callbacks of the queries that completed, in
 * order, then report the first error (ret == NULL, a sock_state_cb
 * error, or a callback's).  The callbacks run with self->done == NULL, so
 * they may use the channel.  `done` lives on this C stack, which greenlet
 * preserves if a callback switches away and back. */
static PyObject *
channel_leave(ChannelObject *self, DoneList *done, PyObject *ret)
{
    PyObject *first = NULL;
    self->done = NULL;
    if (ret == NULL)
        first = PyErr_GetRaisedException();
    if (self->cb_exc) {
        PyObject *exc = self->cb_exc;
        self->cb_exc = NULL;
        keep_first_error(&first, exc, self->sock_state_cb ? self->sock_state_cb : Py_None);
    }
    while (done->head) {
        Request *r = done->head;
        done->head = r->next;
        r->next = NULL;
        self->npending--;
        if (r->callback && r->result) {
            ares_state *st = channel_state(self);
            PyObject *res;
            if (Py_IS_TYPE(r->result, st->ResultType))
                res = PyObject_CallOneArg(r->callback, r->result);
            else {   /* an error building the Result (see request_complete) */
                PyObject *exc = r->result;
                r->result = NULL;
                PyErr_SetRaisedException(exc);
                res = NULL;
            }
            if (res == NULL)
                keep_first_error(&first, PyErr_GetRaisedException(), r->callback);
            else
                Py_DECREF(res);
        }
        request_free(r);
    }
    done->tail = &done->head;
    Py_DECREF(self);
    if (first) {
        Py_XDECREF(ret);
        PyErr_SetRaisedException(first);
        return NULL;
    }
    return ret;
}

/* c-ares wants fd watched (or no longer: both flags 0, just before it
 * closes it). */
static void
channel_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    ChannelObject *self = CHANNEL(data);
    if (self->quiet || self->sock_state_cb == NULL)
        return;
    PyObject *r = PyObject_CallFunction(self->sock_state_cb, "iOO", (int)fd,
                                        readable ? Py_True : Py_False,
                                        writable ? Py_True : Py_False);
    if (r != NULL) {
        Py_DECREF(r);
        return;
    }
    PyObject *exc = PyErr_GetRaisedException();
    keep_first_error(&self->cb_exc, exc, self->sock_state_cb);
}

/* Destroy the channel calling no Python code (dealloc, GC clear). */
static void
channel_destroy_quietly(ChannelObject *self)
{
    if (self->channel == NULL)
        return;
    DoneList done = {NULL, &done.head};
    DoneList *saved = self->done;
    self->quiet = 1;
    self->done = &done;
    ares_destroy(self->channel);
    self->channel = NULL;
    self->done = saved;
    self->quiet = 0;
    /* ares_destroy ends every query; drop any it did not report. */
    while (self->inflight) {
        Request *r = self->inflight;
        request_unlink(r);
        *done.tail = r;
        done.tail = &r->next;
    }
    while (done.head) {
        Request *r = done.head;
        done.head = r->next;
        self->npending--;
        request_free(r);
    }
}

/* --- argument helpers ---------------------------------------------- */

static int
check_callback(PyObject *callback)
{
    if (!PyCallable_Check(callback)) {
        PyErr_Format(PyExc_TypeError, "callback must be callable, not %.100s",
                     Py_TYPE(callback)->tp_name);
        return -1;
    }
    return 0;
}

/* A host name as NUL-free bytes: str (IDNA-encoded), bytes or bytearray. */
static PyObject *
name_to_bytes(PyObject *name, const char *what)
{
    PyObject *b;
    if (PyUnicode_Check(name))
        b = PyUnicode_AsEncodedString(name, "idna", NULL);
    else if (PyBytes_Check(name))
        b = Py_NewRef(name);
    else if (PyByteArray_Check(name))
        b = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(name), PyByteArray_GET_SIZE(name));
    else {
        PyErr_Format(PyExc_TypeError, "%s must be str, bytes or bytearray, not %.100s",
                     what, Py_TYPE(name)->tp_name);
        return NULL;
    }
    if (b && (Py_ssize_t)strlen(PyBytes_AS_STRING(b)) != PyBytes_GET_SIZE(b)) {
        Py_DECREF(b);
        PyErr_Format(PyExc_ValueError, "%s contains a NUL character", what);
        return NULL;
    }
    return b;
}

/* A numeric IPv4/IPv6 address string into *addr; returns the family, or
 * -1 with ValueError. */
static int
parse_ip(PyObject *obj, void *addr, const char *what)
{
    PyObject *b;
    if (PyUnicode_Check(obj))
        b = PyUnicode_AsASCIIString(obj);
    else
        b = name_to_bytes(obj, what);
    if (b == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "illegal IP address string: %R", obj);
        }
        return -1;
    }
    int family = -1;
    const char *s = PyBytes_AS_STRING(b);
    if ((Py_ssize_t)strlen(s) == PyBytes_GET_SIZE(b)) {
        if (inet_pton(AF_INET, s, addr) == 1)
            family = AF_INET;
        else if (inet_pton(AF_INET6, s, addr) == 1)
            family = AF_INET6;
    }
    Py_DECREF(b);
    if (family < 0)
        PyErr_Format(PyExc_ValueError, "illegal IP address string: %R", obj);
    return family;
}

static int
check_family(ares_state *st, int family)
{
    if (family == AF_UNSPEC || family == AF_INET || family == AF_INET6)
        return 0;
    PyObject *exc = PyObject_CallFunction(st->gaierror, "is", EAI_FAMILY,
                                          gai_strerror(EAI_FAMILY));
    if (exc != NULL) {
        PyErr_SetObject(st->gaierror, exc);
        Py_DECREF(exc);
    }
    return -1;
}

static int
ai_flags_to_ares(int f)
{
    int r = 0;
    if (f & AI_CANONNAME)   r |= ARES_AI_CANONNAME;
    if (f & AI_NUMERICHOST) r |= ARES_AI_NUMERICHOST;
    if (f & AI_PASSIVE)     r |= ARES_AI_PASSIVE;
    if (f & AI_NUMERICSERV) r |= ARES_AI_NUMERICSERV;
    if (f & AI_V4MAPPED)    r |= ARES_AI_V4MAPPED;
    if (f & AI_ALL)         r |= ARES_AI_ALL;
    if (f & AI_ADDRCONFIG)  r |= ARES_AI_ADDRCONFIG;
    return r;
}

static int
ni_flags_to_ares(int f)
{
    int r = ARES_NI_LOOKUPHOST | ARES_NI_LOOKUPSERVICE;
    if (f & NI_NOFQDN)      r |= ARES_NI_NOFQDN;
    if (f & NI_NUMERICHOST) r |= ARES_NI_NUMERICHOST;
    if (f & NI_NAMEREQD)    r |= ARES_NI_NAMEREQD;
    if (f & NI_NUMERICSERV) r |= ARES_NI_NUMERICSERV;
    if (f & NI_DGRAM)       r |= ARES_NI_DGRAM;
    return r;
}

/* --- result conversion (inside c-ares callbacks; no Python code runs) --- */

static PyObject *
decode_name(const char *s)
{
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "surrogateescape");
}

static PyObject *
ip_to_str(int family, const void *addr)
{
    char buf[INET6_ADDRSTRLEN];
    if (inet_ntop(family, addr, buf, sizeof(buf)) == NULL)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyUnicode_FromString(buf);
}

/* (hostname, aliaslist, ipaddrlist), as socket.gethostbyname_ex() */
static PyObject *
hostent_to_tuple(const struct hostent *h)
{
    PyObject *name = NULL, *aliases = NULL, *addrs = NULL;
    name = decode_name(h->h_name ? h->h_name : "");
    aliases = PyList_New(0);
    addrs = PyList_New(0);
    if (name == NULL || aliases == NULL || addrs == NULL)
        goto error;
    for (char **p = h->h_aliases; p && *p; p++) {
        PyObject *a = decode_name(*p);
        if (a == NULL || PyList_Append(aliases, a) < 0) {
            Py_XDECREF(a);
            goto error;
        }
        Py_DECREF(a);
    }
    for (char **p = h->h_addr_list; p && *p; p++) {
        PyObject *a = ip_to_str(h->h_addrtype, *p);
        if (a == NULL || PyList_Append(addrs, a) < 0) {
            Py_XDECREF(a);
            goto error;
        }
        Py_DECREF(a);
    }
    return Py_BuildValue("(NNN)", name, aliases, addrs);
error:
    Py_XDECREF(name);
    Py_XDECREF(aliases);
    Py_XDECREF(addrs);
    return NULL;
}

/* (ip, port) or (ip, port, flowinfo, scope_id), as the socket module. */
static PyObject *
sockaddr_to_tuple(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        PyObject *ip = ip_to_str(AF_INET, &in->sin_addr);
        return ip ? Py_BuildValue("(Ni)", ip, (int)ntohs(in->sin_port)) : NULL;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        PyObject *ip = ip_to_str(AF_INET6, &in6->sin6_addr);
        return ip ? Py_BuildValue("(NiII)", ip, (int)ntohs(in6->sin6_port),
                                  (unsigned int)ntohl(in6->sin6_flowinfo),
                                  (unsigned int)in6->sin6_scope_id) : NULL;
    }
    PyErr_Format(PyExc_ValueError, "unsupported address family %d", (int)sa->sa_family);
    return NULL;
}

/* [(family, socktype, proto, canonname, sockaddr), ...]; canonname is set
 * on the first row only, and only if AI_CANONNAME was asked for. */
static PyObject *
addrinfo_to_list(const struct ares_addrinfo *ai, int want_canon)
{
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    const char *canon = NULL;
    if (want_canon) {
        canon = ai->name;
        for (const struct ares_addrinfo_cname *c = ai->cnames; c; c = c->next)
            if (c->name)
                canon = c->name;   /* the last CNAME target is the canonical name */
    }
    int first = 1;
    for (const struct ares_addrinfo_node *n = ai->nodes; n; n = n->ai_next) {
        if (n->ai_addr == NULL)
            continue;
        PyObject *sa = sockaddr_to_tuple(n->ai_addr);
        if (sa == NULL)
            goto error;
        PyObject *cn = decode_name(first && canon ? canon : "");
        PyObject *row = cn ? Py_BuildValue("(iiiNN)", n->ai_family, n->ai_socktype,
                                           n->ai_protocol, cn, sa) : NULL;
        if (cn == NULL)
            Py_DECREF(sa);
        if (row == NULL || PyList_Append(list, row) < 0) {
            Py_XDECREF(row);
            goto error;
        }
        Py_DECREF(row);
        first = 0;
    }
    return list;
error:
    Py_DECREF(list);
    return NULL;
}

/* --- c-ares callbacks ---------------------------------------------- */

static void
host_cb(void *arg, int status, int timeouts, struct hostent *h)
{
    Request *r = arg;
    PyObject *value = NULL, *exc = NULL;
    if (!r->chan->quiet && r->callback) {
        if (status == ARES_SUCCESS && h != NULL) {
            value = hostent_to_tuple(h);
            if (value == NULL)
                exc = PyErr_GetRaisedException();
        }
        else {
            exc = status_to_exception(channel_state(r->chan), r->errkind,
                                      status == ARES_SUCCESS ? ARES_ENODATA : status);
            if (exc == NULL)
                exc = PyErr_GetRaisedException();
        }
    }
    request_complete(r, value, exc);
}

static void
addrinfo_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    Request *r = arg;
    PyObject *value = NULL, *exc = NULL;
    if (!r->chan->quiet && r->callback) {
        if (status == ARES_SUCCESS && res != NULL) {
            value = addrinfo_to_list(res, r->ai_flags & AI_CANONNAME);
            if (value == NULL)
                exc = PyErr_GetRaisedException();
        }
        else {
            exc = status_to_exception(channel_state(r->chan), r->errkind,
                                      status == ARES_SUCCESS ? ARES_ENODATA : status);
            if (exc == NULL)
                exc = PyErr_GetRaisedException();
        }
    }
    if (res != NULL)
        ares_freeaddrinfo(res);
    request_complete(r, value, exc);
}

static void
nameinfo_cb(void *arg, int status, int timeouts, char *node, char *service)
{
    Request *r = arg;
    PyObject *value = NULL, *exc = NULL;
    if (!r->chan->quiet && r->callback) {
        if (status == ARES_SUCCESS) {
            PyObject *n = node ? decode_name(node) : Py_NewRef(Py_None);
            PyObject *s = service ? decode_name(service) : Py_NewRef(Py_None);
            if (n && s)
                value = PyTuple_Pack(2, n, s);
            Py_XDECREF(n);
            Py_XDECREF(s);
            if (value == NULL)
                exc = PyErr_GetRaisedException();
        }
        else {
            exc = status_to_exception(channel_state(r->chan), r->errkind, status);
            if (exc == NULL)
                exc = PyErr_GetRaisedException();
        }
    }
    request_complete(r, value, exc);
}

/* --- construction -------------------------------------------------- */

static int channel_apply_servers(ChannelObject *self, PyObject *servers);

/* Optional int option: -1 if absent (None), else the value within
 * [lo, hi]; -2 with an exception set on error. */
static long
int_option(PyObject *o, const char *name, long lo, long hi)
{
    if (o == NULL || o == Py_None)
        return -1;
    if (PyBool_Check(o) || !PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", name, Py_TYPE(o)->tp_name);
        return -2;
    }
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred())
        return -2;
    if (v < lo || v > hi) {
        PyErr_Format(PyExc_ValueError, "%s must be in [%ld, %ld], got %ld", name, lo, hi, v);
        return -2;
    }
    return v;
}

static PyObject *
channel_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"sock_state_cb", "timeout", "tries", "ndots", "udp_port",
                             "tcp_port", "servers", "flags", "rotate", NULL};
    PyObject *cb, *timeout = Py_None, *tries = Py_None, *ndots = Py_None, *udp_port = Py_None,
             *tcp_port = Py_None, *servers = Py_None, *flags = Py_None, *rotate = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OOOOOOOO:Channel", kwlist, &cb, &timeout,
                                     &tries, &ndots, &udp_port, &tcp_port, &servers, &flags,
                                     &rotate))
        return NULL;
    if (check_callback(cb) < 0)
        return NULL;

    struct ares_options opts;
    int mask = ARES_OPT_SOCK_STATE_CB;
    memset(&opts, 0, sizeof(opts));

    if (timeout != Py_None) {
        double t = PyFloat_AsDouble(timeout);
        if (t == -1.0 && PyErr_Occurred())
            return NULL;
        if (!(t > 0) || t > INT_MAX / 1000.0) {
            PyErr_Format(PyExc_ValueError, "timeout must be a positive number of seconds, got %R",
                         timeout);
            return NULL;
        }
        opts.timeout = (int)ceil(t * 1000.0);
        mask |= ARES_OPT_TIMEOUTMS;
    }
    long v;
    if ((v = int_option(tries, "tries", 1, INT_MAX)) == -2)
        return NULL;
    if (v >= 0) {
        opts.tries = (int)v;
        mask |= ARES_OPT_TRIES;
    }
    if ((v = int_option(ndots, "ndots", 0, INT_MAX)) == -2)
        return NULL;
    if (v >= 0) {
        opts.ndots = (int)v;
        mask |= ARES_OPT_NDOTS;
    }
    if ((v = int_option(udp_port, "udp_port", 0, 65535)) == -2)
        return NULL;
    if (v >= 0) {
        opts.udp_port = (unsigned short)v;
        mask |= ARES_OPT_UDP_PORT;
    }
    if ((v = int_option(tcp_port, "tcp_port", 0, 65535)) == -2)
        return NULL;
    if (v >= 0) {
        opts.tcp_port = (unsigned short)v;
        mask |= ARES_OPT_TCP_PORT;
    }
    if ((v = int_option(flags, "flags", 0, INT_MAX)) == -2)
        return NULL;
    if (v >= 0) {
        opts.flags = (int)v;
        mask |= ARES_OPT_FLAGS;
    }
    if (rotate != Py_None) {
        int on = PyObject_IsTrue(rotate);
        if (on < 0)
            return NULL;
        mask |= on ? ARES_OPT_ROTATE : ARES_OPT_NOROTATE;
    }

    ChannelObject *self = (ChannelObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->sock_state_cb = Py_NewRef(cb);
    opts.sock_state_cb = channel_sock_state;
    opts.sock_state_cb_data = self;
    int status = ares_init_options(&self->channel, &opts, mask);
    if (status != ARES_SUCCESS) {
        self->channel = NULL;
        if (status == ARES_ENOMEM)
            PyErr_NoMemory();
        else
            PyErr_Format(PyExc_RuntimeError, "ares_init_options failed: %s",
                         ares_strerror(status));
        Py_DECREF(self);
        return NULL;
    }
    if (servers != Py_None && channel_apply_servers(self, servers) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
channel_traverse(ChannelObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->sock_state_cb);
    Py_VISIT(self->cb_exc);
    for (Request *r = self->inflight; r; r = r->next)
        Py_VISIT(r->callback);
    return 0;
}

static int
channel_clear(ChannelObject *self)
{
    Py_CLEAR(self->sock_state_cb);
    Py_CLEAR(self->cb_exc);
    if (self->done == NULL)
        channel_destroy_quietly(self);
    else {   /* inside c-ares (cannot happen for garbage); just drop callbacks */
        for (Request *r = self->inflight; r; r = r->next)
            Py_CLEAR(r->callback);
    }
    return 0;
}

static void
channel_dealloc(ChannelObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    self->quiet = 1;
    channel_destroy_quietly(self);
    Py_CLEAR(self->sock_state_cb);
    Py_CLEAR(self->cb_exc);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* --- methods ------------------------------------------------------- */

PyDoc_STRVAR(channel_process_fd_doc,
"process_fd(read_fd, write_fd)\n\n"
"Let c-ares handle read_fd being readable and write_fd writable (either\n"
"may be -1, SOCKET_BAD); process_fd(-1, -1) handles expired timeouts.\n"
"Callbacks of queries that complete are called before it returns.");

static PyObject *
channel_process_fd(ChannelObject *self, PyObject *args)
{
    int rfd, wfd;
    DoneList done;
    if (!PyArg_ParseTuple(args, "ii:process_fd", &rfd, &wfd))
        return NULL;
    if (rfd < -1 || wfd < -1) {
        PyErr_SetString(PyExc_ValueError, "fds must be >= 0, or -1 for none");
        return NULL;
    }
    if (channel_enter(self, &done) < 0)
        return NULL;
    ares_process_fd(self->channel, (ares_socket_t)rfd, (ares_socket_t)wfd);
    return channel_leave(self, &done, Py_NewRef(Py_None));
}

PyDoc_STRVAR(channel_timeout_doc,
"timeout(max=None) -> float or None\n\n"
"Seconds until c-ares next needs process_fd(-1, -1), at most max.  With no\n"
"query pending: max (None if not given).");

static PyObject *
channel_timeout(ChannelObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max", NULL};
    PyObject *max_o = Py_None;
    struct timeval maxtv, tv, *res;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:timeout", kwlist, &max_o))
        return NULL;
    if (self->channel == NULL) {
        PyErr_SetString(PyExc_ValueError, "channel is destroyed");
        return NULL;
    }
    if (max_o != Py_None) {
        double m = PyFloat_AsDouble(max_o);
        if (m == -1.0 && PyErr_Occurred())
            return NULL;
        if (!(m >= 0) || m > 1e9) {
            PyErr_Format(PyExc_ValueError, "max must be a number of seconds >= 0, got %R", max_o);
            return NULL;
        }
        maxtv.tv_sec = (time_t)m;
        maxtv.tv_usec = (suseconds_t)((m - (double)maxtv.tv_sec) * 1e6);
    }
    res = ares_timeout(self->channel, max_o == Py_None ? NULL : &maxtv, &tv);
    if (res == NULL)
        Py_RETURN_NONE;
    return PyFloat_FromDouble((double)res->tv_sec + (double)res->tv_usec / 1e6);
}

/* servers: a list/tuple of 'ip' / 'ip:port' / '[ipv6]:port' strings, or
 * one comma-separated string. */
static int
channel_apply_servers(ChannelObject *self, PyObject *servers)
{
    PyObject *csv;
    if (PyUnicode_Check(servers))
        csv = Py_NewRef(servers);
    else if (PyList_Check(servers) || PyTuple_Check(servers)) {
        PyObject *seq = PySequence_Fast(servers, "servers must be a list");
        if (seq == NULL)
            return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
            if (!PyUnicode_Check(item)) {
                PyErr_Format(PyExc_TypeError, "servers must be strings, not %.100s",
                             Py_TYPE(item)->tp_name);
                Py_DECREF(seq);
                return -1;
            }
            if (PyUnicode_GET_LENGTH(item) == 0 || PyUnicode_FindChar(
                    item, ',', 0, PyUnicode_GET_LENGTH(item), 1) != -1) {
                PyErr_Format(PyExc_ValueError, "invalid server address: %R", item);
                Py_DECREF(seq);
                return -1;
            }
        }
        PyObject *sep = PyUnicode_FromString(",");
        csv = sep ? PyUnicode_Join(sep, seq) : NULL;
        Py_XDECREF(sep);
        Py_DECREF(seq);
        if (csv == NULL)
            return -1;
    }
    else {
        PyErr_Format(PyExc_TypeError, "servers must be a list of strings, not %.100s",
                     Py_TYPE(servers)->tp_name);
        return -1;
    }
    PyObject *b = PyUnicode_AsASCIIString(csv);
    if (b == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "invalid server address list: %R", csv);
        Py_DECREF(csv);
        return -1;
    }
    if ((Py_ssize_t)strlen(PyBytes_AS_STRING(b)) != PyBytes_GET_SIZE(b)) {
        PyErr_Format(PyExc_ValueError, "invalid server address list: %R", csv);
        Py_DECREF(b);
        Py_DECREF(csv);
        return -1;
    }
    DoneList done;
    if (channel_enter(self, &done) < 0) {
        Py_DECREF(b);
        Py_DECREF(csv);
        return -1;
    }
    int status = ares_set_servers_ports_csv(self->channel, PyBytes_AS_STRING(b));
    Py_DECREF(b);
    PyObject *ret = Py_NewRef(Py_None);
    if (status != ARES_SUCCESS) {
        Py_CLEAR(ret);
        if (status == ARES_ENOTIMP)
            PyErr_SetString(PyExc_RuntimeError,
                            "cannot change servers while queries are pending");
        else if (status == ARES_ENOMEM)
            PyErr_NoMemory();
        else
            PyErr_Format(PyExc_ValueError, "invalid server address list %R: %s", csv,
                         ares_strerror(status));
    }
    Py_DECREF(csv);
    ret = channel_leave(self, &done, ret);
    if (ret == NULL)
        return -1;
    Py_DECREF(ret);
    return 0;
}

PyDoc_STRVAR(channel_set_servers_doc,
"set_servers(servers)\n\n"
"Use these name servers: a list of 'ip', 'ip:port' or '[ipv6]:port'\n"
"strings (or one comma-separated string).  RuntimeError while queries are\n"
"pending.");

static PyObject *
channel_set_servers(ChannelObject *self, PyObject *servers)
{
    if (channel_check_usable(self) < 0 || channel_apply_servers(self, servers) < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(channel_gethostbyname_doc,
"gethostbyname(callback, name, family=AF_INET)\n\n"
"Look name up; callback(Result) gets (hostname, aliaslist, ipaddrlist) or\n"
"a socket.gaierror.  A family other than AF_INET/AF_INET6/AF_UNSPEC raises\n"
"gaierror(EAI_FAMILY) at once.");

static PyObject *
channel_gethostbyname(ChannelObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"callback", "name", "family", NULL};
    PyObject *callback, *name, *b;
    int family = AF_INET;
    DoneList done;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|i:gethostbyname", kwlist, &callback,
                                     &name, &family))
        return NULL;
    if (check_callback(callback) < 0 || check_family(channel_state(self), family) < 0
        || (b = name_to_bytes(name, "name")) == NULL)
        return NULL;
    if (channel_enter(self, &done) < 0) {
        Py_DECREF(b);
        return NULL;
    }
    Request *r = request_new(self, callback, REQ_GAI);
    if (r != NULL)
        ares_gethostbyname(self->channel, PyBytes_AS_STRING(b), family, host_cb, r);
    Py_DECREF(b);
    return channel_leave(self, &done, r ? Py_NewRef(Py_None) : NULL);
}

PyDoc_STRVAR(channel_gethostbyaddr_doc,
"gethostbyaddr(callback, addr)\n\n"
"Reverse lookup of the numeric IPv4/IPv6 address addr; callback(Result)\n"
"gets (hostname, aliaslist, ipaddrlist) or a socket.herror.");

static PyObject *
channel_gethostbyaddr(ChannelObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"callback", "addr", NULL};
    PyObject *callback, *addr;
    unsigned char buf[sizeof(struct in6_addr)];
    DoneList done;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:gethostbyaddr", kwlist, &callback, &addr))
        return NULL;
    if (check_callback(callback) < 0)
        return NULL;
    int family = parse_ip(addr, buf, "addr");
    if (family < 0)
        return NULL;
    if (channel_enter(self, &done) < 0)
        return NULL;
    Request *r = request_new(self, callback, REQ_HERROR);
    if (r != NULL)
        ares_gethostbyaddr(self->channel, buf,
                           family == AF_INET ? (int)sizeof(struct in_addr)
                                             : (int)sizeof(struct in6_addr),
                           family, host_cb, r);
    return channel_leave(self, &done, r ? Py_NewRef(Py_None) : NULL);
}

PyDoc_STRVAR(channel_getaddrinfo_doc,
"getaddrinfo(callback, node, service=None, family=0, socktype=0, proto=0, flags=0)\n\n"
"ares_getaddrinfo; flags are the socket module's AI_* flags.  callback(Result)\n"
"gets a list of (family, socktype, proto, canonname, sockaddr) as c-ares\n"
"reports them (socktype/proto may be 0), or a socket.gaierror.  A family\n"
"other than AF_INET/AF_INET6/AF_UNSPEC raises gaierror(EAI_FAMILY) at once.");

static PyObject *
channel_getaddrinfo(ChannelObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"callback", "node", "service", "family", "socktype", "proto",
                             "flags", NULL};
    PyObject *callback, *node, *service = Py_None, *nb, *sb = NULL;
    int family = 0, socktype = 0, proto = 0, flags = 0;
    DoneList done;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|Oiiii:getaddrinfo", kwlist, &callback,
                                     &node, &service, &family, &socktype, &proto, &flags))
        return NULL;
    if (check_callback(callback) < 0 || check_family(channel_state(self), family) < 0
        || (nb = name_to_bytes(node, "node")) == NULL)
        return NULL;
    if (PyLong_Check(service) && !PyBool_Check(service)) {
        long port = PyLong_AsLong(service);
        if ((port == -1 && PyErr_Occurred()) || port < 0 || port > 65535) {
            PyErr_Clear();
            PyErr_SetString(PyExc_OverflowError, "getaddrinfo(): port must be 0-65535.");
        }
        else
            sb = port ? PyBytes_FromFormat("%ld", port) : NULL;
        if (PyErr_Occurred()) {
            Py_DECREF(nb);
            return NULL;
        }
    }
    else if (service != Py_None) {
        if ((sb = name_to_bytes(service, "service")) == NULL) {
            Py_DECREF(nb);
            return NULL;
        }
    }
    if (channel_enter(self, &done) < 0) {
        Py_DECREF(nb);
        Py_XDECREF(sb);
        return NULL;
    }
    Request *r = request_new(self, callback, REQ_GAI);
    if (r != NULL) {
        struct ares_addrinfo_hints hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = family;
        if (family == AF_UNSPEC) {
            /* c-ares 1.18 sends an IPv4 literal to DNS when the family is
             * AF_UNSPEC (its IPv6 parse overrides the IPv4 one). */
            struct in_addr tmp;
            if (inet_pton(AF_INET, PyBytes_AS_STRING(nb), &tmp) == 1)
                hints.ai_family = AF_INET;
        }
        hints.ai_socktype = socktype;
        hints.ai_protocol = proto;
        hints.ai_flags = ai_flags_to_ares(flags);
        r->ai_flags = flags;
        ares_getaddrinfo(self->channel, PyBytes_AS_STRING(nb),
                         sb ? PyBytes_AS_STRING(sb) : NULL, &hints, addrinfo_cb, r);
    }
    Py_DECREF(nb);
    Py_XDECREF(sb);
    return channel_leave(self, &done, r ? Py_NewRef(Py_None) : NULL);
}

PyDoc_STRVAR(channel_getnameinfo_doc,
"getnameinfo(callback, sockaddr, flags)\n\n"
"sockaddr is (ip, port) or (ip, port, flowinfo, scope_id) with a numeric ip;\n"
"flags are the socket module's NI_* flags.  callback(Result) gets\n"
"(host, service) (either may be None) or a socket.gaierror.");

static PyObject *
channel_getnameinfo(ChannelObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"callback", "sockaddr", "flags", NULL};
    PyObject *callback, *sockaddr, *host;
    int flags, port;
    unsigned int flowinfo = 0, scope_id = 0;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } u;
    socklen_t salen;
    DoneList done;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO!i:getnameinfo", kwlist, &callback,
                                     &PyTuple_Type, &sockaddr, &flags))
        return NULL;
    if (check_callback(callback) < 0)
        return NULL;
    if (!PyArg_ParseTuple(sockaddr, "Oi|II:getnameinfo", &host, &port, &flowinfo, &scope_id))
        return NULL;
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_OverflowError, "getnameinfo(): port must be 0-65535.");
        return NULL;
    }
    if (flowinfo > 0xfffff) {
        PyErr_SetString(PyExc_OverflowError, "getnameinfo(): flowinfo must be 0-1048575.");
        return NULL;
    }
    unsigned char buf[sizeof(struct in6_addr)];
    int family = parse_ip(host, buf, "host");
    if (family < 0)
        return NULL;
    memset(&u, 0, sizeof(u));
    if (family == AF_INET) {
        if (PyTuple_GET_SIZE(sockaddr) != 2) {
            PyErr_SetString(PyExc_OSError, "IPv4 sockaddr must be 2 tuple");
            return NULL;
        }
        u.in.sin_family = AF_INET;
        u.in.sin_port = htons((unsigned short)port);
        memcpy(&u.in.sin_addr, buf, sizeof(struct in_addr));
        salen = sizeof(u.in);
    }
    else {
        u.in6.sin6_family = AF_INET6;
        u.in6.sin6_port = htons((unsigned short)port);
        u.in6.sin6_flowinfo = htonl(flowinfo);
        u.in6.sin6_scope_id = scope_id;
        memcpy(&u.in6.sin6_addr, buf, sizeof(struct in6_addr));
        salen = sizeof(u.in6);
    }
    if (channel_enter(self, &done) < 0)
        return NULL;
    Request *r = request_new(self, callback, REQ_GAI);
    if (r != NULL)
        ares_getnameinfo(self->channel, &u.sa, salen, ni_flags_to_ares(flags), nameinfo_cb, r);
    return channel_leave(self, &done, r ? Py_NewRef(Py_None) : NULL);
}

PyDoc_STRVAR(channel_destroy_doc,
"destroy()\n\n"
"Destroy the channel: pending queries' callbacks get an exception result\n"
"(before destroy returns) and sock_state_cb is told to stop watching every\n"
"socket.  Idempotent.  Other methods then raise ValueError.");

static PyObject *
channel_destroy(ChannelObject *self, PyObject *unused)
{
    DoneList done;
    if (self->channel == NULL)
        Py_RETURN_NONE;
    if (channel_enter(self, &done) < 0)
        return NULL;
    ares_channel ch = self->channel;
    ares_destroy(ch);
    self->channel = NULL;
    /* ares_destroy ends every query with ARES_EDESTRUCTION; if one was
     * not reported, end it here so its callback still runs once. */
    while (self->inflight) {
        Request *r = self->inflight;
        PyObject *exc = status_to_exception(channel_state(self), r->errkind, ARES_EDESTRUCTION);
        request_complete(r, NULL, exc ? exc : PyErr_GetRaisedException());
    }
    return channel_leave(self, &done, Py_NewRef(Py_None));
}

static PyObject *
channel_get_destroyed(ChannelObject *self, void *c)
{
    return PyBool_FromLong(self->channel == NULL);
}

static PyObject *
channel_get_pending(ChannelObject *self, void *c)
{
    return PyLong_FromSsize_t(self->npending);
}

static PyObject *
channel_get_sock_state_cb(ChannelObject *self, void *c)
{
    return Py_NewRef(self->sock_state_cb ? self->sock_state_cb : Py_None);
}

static PyObject *
channel_repr(ChannelObject *self)
{
    if (self->channel == NULL)
        return PyUnicode_FromFormat("<%s at %p destroyed>", Py_TYPE(self)->tp_name, self);
    return PyUnicode_FromFormat("<%s at %p pending=%zd>", Py_TYPE(self)->tp_name, self,
                                self->npending);
}

static PyMethodDef channel_methods[] = {
    {"process_fd", (PyCFunction)channel_process_fd, METH_VARARGS, channel_process_fd_doc},
    {"timeout", (PyCFunction)(void (*)(void))channel_timeout, METH_VARARGS | METH_KEYWORDS,
     channel_timeout_doc},
    {"set_servers", (PyCFunction)channel_set_servers, METH_O, channel_set_servers_doc},
    {"gethostbyname", (PyCFunction)(void (*)(void))channel_gethostbyname,
     METH_VARARGS | METH_KEYWORDS, channel_gethostbyname_doc},
    {"gethostbyaddr", (PyCFunction)(void (*)(void))channel_gethostbyaddr,
     METH_VARARGS | METH_KEYWORDS, channel_gethostbyaddr_doc},
    {"getaddrinfo", (PyCFunction)(void (*)(void))channel_getaddrinfo,
     METH_VARARGS | METH_KEYWORDS, channel_getaddrinfo_doc},
    {"getnameinfo", (PyCFunction)(void (*)(void))channel_getnameinfo,
     METH_VARARGS | METH_KEYWORDS, channel_getnameinfo_doc},
    {"destroy", (PyCFunction)channel_destroy, METH_NOARGS, channel_destroy_doc},
    {NULL}
};

static PyGetSetDef channel_getset[] = {
    {"destroyed", (getter)channel_get_destroyed, NULL, "True once destroy() ran.", NULL},
    {"pending", (getter)channel_get_pending, NULL,
     "Number of queries whose callback has not been called yet.", NULL},
    {"sock_state_cb", (getter)channel_get_sock_state_cb, NULL, NULL, NULL},
    {NULL}
};

PyDoc_STRVAR(channel_doc,
"Channel(sock_state_cb, timeout=None, tries=None, ndots=None, udp_port=None,\n"
"        tcp_port=None, servers=None, flags=None, rotate=None)\n\n"
"One c-ares channel.  sock_state_cb(fd, readable, writable) is called\n"
"whenever c-ares wants fd watched for those events (both False: stop\n"
"watching it, it is about to be closed); it must not call the channel.\n"
"timeout is in seconds; servers is a list of 'ip' / 'ip:port' strings;\n"
"flags are FLAG_* bits.  Other options keep c-ares' defaults (from\n"
"/etc/resolv.conf).  Each query method calls its callback exactly once\n"
"with a Result, after c-ares has returned.");

static PyType_Slot channel_slots[] = {
    {Py_tp_doc, (void *)channel_doc},
    {Py_tp_new, channel_new},
    {Py_tp_dealloc, channel_dealloc},
    {Py_tp_traverse, channel_traverse},
    {Py_tp_clear, channel_clear},
    {Py_tp_repr, channel_repr},
    {Py_tp_methods, channel_methods},
    {Py_tp_getset, channel_getset},
    {0, NULL}
};

static PyType_Spec channel_spec = {
    .name = "gevent_c._ares.Channel",
    .basicsize = sizeof(ChannelObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = channel_slots,
};

/* ------------------------------------------------------------------ */
/* Module                                                              */
/* ------------------------------------------------------------------ */

static int
add_object(PyObject *m, const char *name, PyObject *o)   /* steals o */
{
    if (o == NULL)
        return -1;
    if (PyModule_AddObject(m, name, o) < 0) {
        Py_DECREF(o);
        return -1;
    }
    return 0;
}

static int
ares_exec(PyObject *m)
{
    ares_state *st = (ares_state *)PyModule_GetState(m);
    if (!ares_lib_initialized) {
        int status = ares_library_init(ARES_LIB_INIT_ALL);
        if (status != ARES_SUCCESS) {
            PyErr_Format(PyExc_ImportError, "ares_library_init failed: %s",
                         ares_strerror(status));
            return -1;
        }
        ares_lib_initialized = 1;
    }
    PyObject *sock = PyImport_ImportModule("_socket");
    if (sock == NULL)
        return -1;
    st->gaierror = PyObject_GetAttrString(sock, "gaierror");
    st->herror = PyObject_GetAttrString(sock, "herror");
    Py_DECREF(sock);
    if (st->gaierror == NULL || st->herror == NULL)
        return -1;
    st->ResultType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &result_spec, NULL);
    if (st->ResultType == NULL)
        return -1;
    st->ChannelType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &channel_spec, NULL);
    if (st->ChannelType == NULL)
        return -1;
    if (add_object(m, "Result", Py_NewRef(st->ResultType)) < 0
        || add_object(m, "Channel", Py_NewRef(st->ChannelType)) < 0
        || add_object(m, "ares_version", PyUnicode_FromString(ares_version(NULL))) < 0
        || PyModule_AddIntConstant(m, "SOCKET_BAD", (long)ARES_SOCKET_BAD) < 0
        || PyModule_AddIntConstant(m, "FLAG_USEVC", ARES_FLAG_USEVC) < 0
        || PyModule_AddIntConstant(m, "FLAG_PRIMARY", ARES_FLAG_PRIMARY) < 0
        || PyModule_AddIntConstant(m, "FLAG_IGNTC", ARES_FLAG_IGNTC) < 0
        || PyModule_AddIntConstant(m, "FLAG_NORECURSE", ARES_FLAG_NORECURSE) < 0
        || PyModule_AddIntConstant(m, "FLAG_STAYOPEN", ARES_FLAG_STAYOPEN) < 0
        || PyModule_AddIntConstant(m, "FLAG_NOSEARCH", ARES_FLAG_NOSEARCH) < 0
        || PyModule_AddIntConstant(m, "FLAG_NOALIASES", ARES_FLAG_NOALIASES) < 0
        || PyModule_AddIntConstant(m, "FLAG_NOCHECKRESP", ARES_FLAG_NOCHECKRESP) < 0
        || PyModule_AddIntConstant(m, "FLAG_EDNS", ARES_FLAG_EDNS) < 0
#ifdef EAI_CANCELED
        || PyModule_AddIntConstant(m, "EAI_CANCELED", EAI_CANCELED) < 0
#else
        || PyModule_AddIntConstant(m, "EAI_CANCELED", EAI_FAIL) < 0
#endif
        )
        return -1;
    return 0;
}

static int
ares_traverse(PyObject *m, visitproc visit, void *arg)
{
    ares_state *st = (ares_state *)PyModule_GetState(m);
    Py_VISIT(st->ResultType);
    Py_VISIT(st->ChannelType);
    Py_VISIT(st->gaierror);
    Py_VISIT(st->herror);
    return 0;
}

static int
ares_clear(PyObject *m)
{
    ares_state *st = (ares_state *)PyModule_GetState(m);
    Py_CLEAR(st->ResultType);
    Py_CLEAR(st->ChannelType);
    Py_CLEAR(st->gaierror);
    Py_CLEAR(st->herror);
    return 0;
}

static void
ares_free(void *m)
{
    ares_clear((PyObject *)m);
}

static PyModuleDef_Slot ares_slots[] = {
    {Py_mod_exec, ares_exec},
    {0, NULL}
};

static struct PyModuleDef ares_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "gevent_c._ares",
    .m_doc = "A c-ares channel for gevent_c.resolver_ares (no hub, no libuv).",
    .m_size = sizeof(ares_state),
    .m_slots = ares_slots,
    .m_traverse = ares_traverse,
    .m_clear = ares_clear,
    .m_free = ares_free,
};

PyMODINIT_FUNC PyInit__ares(void);

PyMODINIT_FUNC
PyInit__ares(void)
{
    return PyModuleDef_Init(&ares_module);
}
