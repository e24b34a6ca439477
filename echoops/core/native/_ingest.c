/* The ingest hot loops in C: `slo.aggregates._fold_typed_py` and `costs.ingest._fold_typed_py`
 * line for line.
 *
 * The Python functions are the definitions; these are their compiled twins (tests/test_native.py
 * holds each pair equal on generated batches, and the fast == careful properties run against
 * them). A twin only ever takes a line its Python fast path would take, the same way; anything it
 * is not sure of it hands to the careful callback, which is always correct (the careful path
 * defines a good line).
 *
 * fold_requests(batch, per, bcache, minutes, oldest, epoch_lo, epoch_hi, key, careful, consts)
 *   batch    list of `request_lines()` structs (ts: str | float, status: int, latency_ms: float)
 *   per      dict minute -> list of keys (appended to)
 *   bcache   dict latency -> key (bucket | SLOW_FLAG), filled through `key(latency)`
 *   minutes  clock.Stamps.minutes: "YYYY-MM-DDTHH:MM" -> minute number (learnt by `careful`)
 *   oldest   the oldest minute kept; epoch_lo/epoch_hi the epoch numbers `line_ts` accepts
 *   careful  careful(ts, status, latency_ms): the line through the careful path
 *   consts   (STATUS_MAX, ERROR_STATUS, ERROR_FLAG)
 *
 * fold_usage(batch, per_day, minutes, epoch_lo, epoch_hi, bad_model, to_pico, careful, consts) -> int
 *   batch    list of `usage_lines()` structs (ts: str | float, model: str, input_tokens,
 *            output_tokens: int | None, usd: float | None)
 *   per_day  dict day -> {model: [calls, in, out, usd pico, ...]} (added to)
 *   bad_model the list a refused model maps to; to_pico prices.usd_to_pico
 *   careful  careful(struct): the line through the careful path
 *   consts   (MAX_TOKENS, MAX_USD)
 *   returns  the lines of a refused model (for bad["bad_model"])
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>
#include <string.h>

/* A field of the batch's struct type: read from its slot when it is a plain object member. */
typedef struct {
    PyObject *name;
    Py_ssize_t offset; /* -1: through getattr */
} Field;

static int
field_init(Field *f, PyTypeObject *type, const char *name)
{
    f->name = PyUnicode_InternFromString(name);
    if (f->name == NULL)
        return -1;
    f->offset = -1;
    PyObject *descr = _PyType_Lookup(type, f->name); /* borrowed */
    if (descr != NULL && Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *def = ((PyMemberDescrObject *)descr)->d_member;
        if (def->type == T_OBJECT_EX)
            f->offset = def->offset;
    }
    return 0;
}

/* A new reference to the field of `o` (NULL with an exception set when it has none). */
static inline PyObject *
field_get(const Field *f, PyObject *o, PyTypeObject *type)
{
    if (f->offset >= 0 && Py_IS_TYPE(o, type)) {
        PyObject *v = *(PyObject **)((char *)o + f->offset);
        if (v != NULL) {
            Py_INCREF(v);
            return v;
        }
    }
    return PyObject_GetAttr(o, f->name);
}

/* Python's float floor division by a positive whole divisor (Objects/floatobject.c), so the
 * minute of an epoch number is the one `int(ts // 60)` gives. */
static double
floor_div(double vx, double wx)
{
    double mod = fmod(vx, wx);
    double div = (vx - mod) / wx;
    if (mod && ((wx < 0) != (mod < 0)))
        div -= 1.0;
    double floordiv;
    if (div) {
        floordiv = floor(div);
        if (div - floordiv > 0.5)
            floordiv += 1.0;
    }
    else {
        floordiv = copysign(0.0, vx / wx);
    }
    return floordiv;
}

/* The rest of a stamp after its seconds, as clock.RESTS / clock.digits_z accept it:
 * `Z`, or `.` + one or more ASCII digits + `Z`. */
static inline int
rest_ok(const char *rest, Py_ssize_t n)
{
    if (n == 1)
        return rest[0] == 'Z';
    if (n < 3 || rest[0] != '.' || rest[n - 1] != 'Z')
        return 0;
    for (Py_ssize_t i = 1; i < n - 1; i++) {
        if (rest[i] < '0' || rest[i] > '9')
            return 0;
    }
    return 1;
}

/* The last fast line's stamp: its second "YYYY-MM-DDTHH:MM:SS" and minute prefix "YYYY-MM-DDTHH:MM"
 * (clock.Stamps' fast path, as the Python loops keep it in `lo`/`hi` and `cur_q`). */
typedef struct {
    char second[19];
    int have_second;
    char q[16];
    int have_q;
} Stamp;

static inline void
stamp_forget(Stamp *c)
{
    c->have_second = 0;
    c->have_q = 0;
}

/* An ISO `...Z` stamp on the fast path: 1 when it is in the last line's minute (its second
 * checked), 2 when it names another minute `minutes` knows (`*minute` set; the caller moves to
 * it, or sends the line careful and forgets), 0 when the line goes careful, -1 on an error. */
static int
stamp_minute(Stamp *c, PyObject *ts, PyObject *minutes, long long *minute)
{
    if (!PyUnicode_IS_COMPACT_ASCII(ts))
        return 0;
    Py_ssize_t len = PyUnicode_GET_LENGTH(ts);
    const char *s = (const char *)PyUnicode_DATA(ts);
    if (len < 20 || !rest_ok(s + 19, len - 19))
        return 0;
    if (c->have_second && memcmp(s, c->second, 19) == 0)
        return 1;
    if (s[16] != ':' || s[17] < '0' || s[17] > '5' || s[18] < '0' || s[18] > '9')
        return 0; /* clock.SECONDS: ":00" .. ":59" */
    int fresh = 0;
    if (!(c->have_q && memcmp(s, c->q, 16) == 0)) {
        PyObject *q = PyUnicode_FromStringAndSize(s, 16);
        if (q == NULL)
            return -1;
        PyObject *mobj = PyDict_GetItemWithError(minutes, q); /* borrowed */
        Py_DECREF(q);
        if (mobj == NULL)
            return PyErr_Occurred() ? -1 : 0;
        long long m = PyLong_AsLongLong(mobj);
        if (m == -1 && PyErr_Occurred())
            return -1;
        *minute = m;
        memcpy(c->q, s, 16);
        c->have_q = 1;
        fresh = 1;
    }
    memcpy(c->second, s, 19);
    c->have_second = 1;
    return fresh ? 2 : 1;
}

/* Is the pending exception one the Python loop's `except` takes (the line goes careful)?
 * The request loop takes ValueError too, the usage loop does not. */
static int
careful_error(int value_error)
{
    return PyErr_ExceptionMatches(PyExc_KeyError) || PyErr_ExceptionMatches(PyExc_TypeError) ||
           (value_error && PyErr_ExceptionMatches(PyExc_ValueError)) || PyErr_ExceptionMatches(PyExc_IndexError);
}

static PyObject *
new_list(void)
{
    return PyList_New(0);
}

/* d[k], made by `make()` when missing (`d.get(k) or d.setdefault(k, make())`; the loops'
 * `per[m]` lists and `per_day[day]` dicts): a new reference. */
static PyObject *
entry(PyObject *d, long long k, PyObject *(*make)(void))
{
    PyObject *key = PyLong_FromLongLong(k);
    if (key == NULL)
        return NULL;
    PyObject *v = PyDict_GetItemWithError(d, key); /* borrowed */
    if (v != NULL) {
        Py_INCREF(v);
    }
    else if (!PyErr_Occurred()) {
        v = make();
        if (v != NULL && PyDict_SetItem(d, key, v) < 0)
            Py_CLEAR(v);
    }
    Py_DECREF(key);
    return v;
}

static PyObject *
fold_requests(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 10) {
        PyErr_Format(PyExc_TypeError, "fold_requests takes 10 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *batch = args[0], *per = args[1], *bcache = args[2], *minutes = args[3];
    PyObject *key_fn = args[7], *careful_fn = args[8], *consts = args[9];
    if (!PyList_CheckExact(batch) || !PyDict_CheckExact(per) || !PyDict_CheckExact(bcache) ||
        !PyDict_CheckExact(minutes) || !PyTuple_CheckExact(consts) || PyTuple_GET_SIZE(consts) != 3) {
        PyErr_SetString(PyExc_TypeError, "fold_requests: list, dict, dict, dict, ..., (int, int, int) expected");
        return NULL;
    }
    long long oldest = PyLong_AsLongLong(args[4]);
    double epoch_lo = PyFloat_AsDouble(args[5]);
    double epoch_hi = PyFloat_AsDouble(args[6]);
    long long status_max = PyLong_AsLongLong(PyTuple_GET_ITEM(consts, 0));
    long long error_status = PyLong_AsLongLong(PyTuple_GET_ITEM(consts, 1));
    long long error_flag = PyLong_AsLongLong(PyTuple_GET_ITEM(consts, 2));
    if (PyErr_Occurred())
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(batch);
    if (n == 0)
        Py_RETURN_NONE;

    PyTypeObject *type = Py_TYPE(PyList_GET_ITEM(batch, 0));
    Field f_ts, f_status, f_lat;
    if (field_init(&f_ts, type, "ts") < 0 || field_init(&f_status, type, "status") < 0 ||
        field_init(&f_lat, type, "latency_ms") < 0)
        return NULL; /* the interned names live for the interpreter's life */

    PyObject *cur = NULL;        /* the list of the current minute (a new reference) */
    long long cur_m = LLONG_MIN; /* its minute; LLONG_MIN: none */
    Stamp stamp = {.have_second = 0, .have_q = 0};

    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(batch); i++) {
        PyObject *o = PyList_GET_ITEM(batch, i);
        PyObject *ts = field_get(&f_ts, o, type);
        PyObject *st = ts ? field_get(&f_status, o, type) : NULL;
        PyObject *lat = st ? field_get(&f_lat, o, type) : NULL;
        PyObject *k = NULL;
        int ok = 0; /* 1: the line counts (append k); 0: careful */
        if (lat == NULL)
            goto fail;

        /* status: a whole number in 0..STATUS_MAX */
        if (!PyLong_CheckExact(st))
            goto careful;
        int overflow = 0;
        long long sv = PyLong_AsLongLongAndOverflow(st, &overflow);
        if (sv == -1 && PyErr_Occurred())
            goto fail;
        if (overflow < 0 || sv < 0)
            goto careful;

        /* latency -> key, cached */
        PyObject *cached = PyDict_GetItemWithError(bcache, lat); /* borrowed */
        if (cached != NULL) {
            Py_INCREF(cached);
            k = cached;
        }
        else {
            if (PyErr_Occurred())
                goto fail;
            k = PyObject_CallOneArg(key_fn, lat);
            if (k == NULL) {
                if (careful_error(1)) {
                    PyErr_Clear();
                    goto careful;
                }
                goto fail;
            }
            if (PyDict_SetItem(bcache, lat, k) < 0)
                goto fail;
        }
        if (overflow > 0 || sv >= error_status) {
            if (overflow > 0 || sv > status_max)
                goto careful;
            long long kv = PyLong_AsLongLong(k);
            if (kv == -1 && PyErr_Occurred())
                goto fail;
            Py_SETREF(k, PyLong_FromLongLong(kv | error_flag));
            if (k == NULL)
                goto fail;
        }

        /* the stamp: a `...Z` ISO string clock.Stamps knows, or an epoch number in range */
        long long m = cur_m;
        int epoch = 0;
        if (PyUnicode_CheckExact(ts)) {
            int found = stamp_minute(&stamp, ts, minutes, &m);
            if (found < 0)
                goto fail;
            if (found == 0)
                goto careful;
        }
        else if (PyFloat_CheckExact(ts)) {
            double v = PyFloat_AS_DOUBLE(ts);
            if (!(epoch_lo <= v && v <= epoch_hi))
                goto careful;
            m = (long long)floor_div(v, 60.0);
            epoch = 1;
        }
        else {
            goto careful;
        }
        if (m != cur_m) { /* another minute: its list (cur_m passed the oldest check) */
            if (m < oldest)
                goto careful;
            Py_XSETREF(cur, entry(per, m, new_list));
            if (cur == NULL)
                goto fail;
            cur_m = m;
            if (epoch)
                stamp_forget(&stamp);
        }
        ok = 1;

    careful:
        if (ok) {
            if (PyList_Append(cur, k) < 0)
                goto fail;
        }
        else {
            PyObject *r = PyObject_CallFunctionObjArgs(careful_fn, ts, st, lat, NULL);
            if (r == NULL)
                goto fail;
            Py_DECREF(r);
            stamp_forget(&stamp); /* the careful path may have added the minute this line named */
            cur_m = LLONG_MIN;
            Py_CLEAR(cur);
        }
        Py_XDECREF(k);
        Py_DECREF(ts);
        Py_DECREF(st);
        Py_DECREF(lat);
        continue;

    fail:
        Py_XDECREF(k);
        Py_XDECREF(ts);
        Py_XDECREF(st);
        Py_XDECREF(lat);
        Py_XDECREF(cur);
        return NULL;
    }
    Py_XDECREF(cur);
    Py_RETURN_NONE;
}


/* acc[i] += v (v a new reference, consumed); -1 on error. */
static inline int
acc_add(PyObject *acc, Py_ssize_t i, PyObject *v)
{
    if (v == NULL)
        return -1;
    PyObject *sum = PyNumber_Add(PyList_GET_ITEM(acc, i), v);
    Py_DECREF(v);
    if (sum == NULL)
        return -1;
    PyList_SetItem(acc, i, sum); /* steals sum, releases the old value */
    return 0;
}

/* A whole number in 0..top for a token count (None or anything else: no). */
static inline int
tokens_ok(PyObject *v, long long top)
{
    if (!PyLong_CheckExact(v))
        return 0;
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    return !overflow && x >= 0 && x <= top;
}

static PyObject *
fold_usage(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9) {
        PyErr_Format(PyExc_TypeError, "fold_usage takes 9 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *batch = args[0], *per_day = args[1], *minutes = args[2];
    PyObject *bad_model = args[5], *to_pico = args[6], *careful_fn = args[7], *consts = args[8];
    if (!PyList_CheckExact(batch) || !PyDict_CheckExact(per_day) || !PyDict_CheckExact(minutes) ||
        !PyTuple_CheckExact(consts) || PyTuple_GET_SIZE(consts) != 2) {
        PyErr_SetString(PyExc_TypeError, "fold_usage: list, dict, dict, ..., (int, int) expected");
        return NULL;
    }
    double epoch_lo = PyFloat_AsDouble(args[3]);
    double epoch_hi = PyFloat_AsDouble(args[4]);
    long long top = PyLong_AsLongLong(PyTuple_GET_ITEM(consts, 0));
    double top_usd = PyFloat_AsDouble(PyTuple_GET_ITEM(consts, 1));
    if (PyErr_Occurred())
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(batch);
    long long refused = 0;
    if (n == 0)
        return PyLong_FromLongLong(0);

    PyTypeObject *type = Py_TYPE(PyList_GET_ITEM(batch, 0));
    Field f_ts, f_model, f_in, f_out, f_usd;
    if (field_init(&f_ts, type, "ts") < 0 || field_init(&f_model, type, "model") < 0 ||
        field_init(&f_in, type, "input_tokens") < 0 || field_init(&f_out, type, "output_tokens") < 0 ||
        field_init(&f_usd, type, "usd") < 0)
        return NULL;

    PyObject *models = NULL;       /* per_day[cur_day] (a new reference) */
    long long cur_day = LLONG_MIN; /* LLONG_MIN: none */
    Stamp stamp = {.have_second = 0, .have_q = 0};

    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(batch); i++) {
        PyObject *o = PyList_GET_ITEM(batch, i);
        PyObject *ts = NULL, *model = NULL, *it = NULL, *ot = NULL, *usd = NULL;
        int ok = 0;
        Py_INCREF(o);
        ts = field_get(&f_ts, o, type);
        if (ts == NULL)
            goto fail;

        long long day = cur_day;
        int epoch = 0;
        if (PyUnicode_CheckExact(ts)) {
            long long m = 0;
            int found = stamp_minute(&stamp, ts, minutes, &m);
            if (found < 0)
                goto fail;
            if (found == 0)
                goto careful;
            if (found == 2)
                day = m >= 0 ? m / 1440 : -((-m + 1439) / 1440); /* m // 1440 */
        }
        else if (PyFloat_CheckExact(ts) && epoch_lo <= PyFloat_AS_DOUBLE(ts) &&
                 PyFloat_AS_DOUBLE(ts) <= epoch_hi) {
            day = (long long)floor_div(PyFloat_AS_DOUBLE(ts), 86400.0);
            epoch = 1;
        }
        else {
            goto careful;
        }
        if (day != cur_day) {
            Py_XSETREF(models, entry(per_day, day, PyDict_New));
            if (models == NULL)
                goto fail;
            cur_day = day;
            if (epoch)
                stamp_forget(&stamp);
        }

        model = field_get(&f_model, o, type);
        if (model == NULL)
            goto fail;
        PyObject *acc = PyDict_GetItemWithError(models, model); /* borrowed */
        if (acc == NULL) {
            if (PyErr_Occurred())
                goto fail;
            goto careful;
        }
        if (acc == bad_model) {
            refused++;
            goto next;
        }
        if (!PyList_CheckExact(acc) || PyList_GET_SIZE(acc) < 4)
            goto careful;
        Py_INCREF(acc);
        usd = field_get(&f_usd, o, type);
        it = usd ? field_get(&f_in, o, type) : NULL;
        ot = it ? field_get(&f_out, o, type) : NULL;
        if (ot == NULL) {
            Py_DECREF(acc);
            goto fail;
        }
        if (usd == Py_None) {
            if (!tokens_ok(it, top) || !tokens_ok(ot, top)) {
                Py_DECREF(acc);
                goto careful;
            }
            Py_INCREF(it);
            Py_INCREF(ot);
            if (acc_add(acc, 0, PyLong_FromLong(1)) < 0 || acc_add(acc, 1, it) < 0 || acc_add(acc, 2, ot) < 0) {
                Py_DECREF(acc);
                goto fail;
            }
        }
        else {
            if (!PyFloat_CheckExact(usd) || !(0 <= PyFloat_AS_DOUBLE(usd) && PyFloat_AS_DOUBLE(usd) <= top_usd) ||
                it != Py_None || ot != Py_None) {
                Py_DECREF(acc);
                goto careful;
            }
            PyObject *pico = PyObject_CallOneArg(to_pico, usd);
            if (pico == NULL) {
                Py_DECREF(acc);
                if (careful_error(0)) {
                    PyErr_Clear();
                    goto careful;
                }
                goto fail;
            }
            if (acc_add(acc, 0, PyLong_FromLong(1)) < 0 || acc_add(acc, 3, pico) < 0) {
                Py_DECREF(acc);
                goto fail;
            }
        }
        Py_DECREF(acc);
        ok = 1;

    careful:
        if (!ok) {
            PyObject *r = PyObject_CallOneArg(careful_fn, o);
            if (r == NULL)
                goto fail;
            Py_DECREF(r);
            stamp_forget(&stamp); /* the careful path may teach the cache the minute this line named */
            cur_day = LLONG_MIN;
            Py_CLEAR(models);
        }
    next:
        Py_XDECREF(ts);
        Py_XDECREF(model);
        Py_XDECREF(it);
        Py_XDECREF(ot);
        Py_XDECREF(usd);
        Py_DECREF(o);
        continue;

    fail:
        Py_XDECREF(ts);
        Py_XDECREF(model);
        Py_XDECREF(it);
        Py_XDECREF(ot);
        Py_XDECREF(usd);
        Py_DECREF(o);
        Py_XDECREF(models);
        return NULL;
    }
    Py_XDECREF(models);
    return PyLong_FromLongLong(refused);
}

static PyMethodDef methods[] = {
    {"fold_requests", (PyCFunction)(void (*)(void))fold_requests, METH_FASTCALL,
     "fold_requests(batch, per, bcache, minutes, oldest, epoch_lo, epoch_hi, key, careful, consts):\n"
     "slo.aggregates._fold_typed in C (see the module's source for the arguments)."},
    {"fold_usage", (PyCFunction)(void (*)(void))fold_usage, METH_FASTCALL,
     "fold_usage(batch, per_day, minutes, epoch_lo, epoch_hi, bad_model, to_pico, careful, consts) -> int:\n"
     "costs.ingest._fold_typed in C; returns the lines of a refused model."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ingest", "The ingest hot loops in C (echoops.core.native).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__ingest(void)
{
    return PyModule_Create(&module);
}
