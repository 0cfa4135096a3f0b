/* The optional C accelerator of the per-request hot path (see core/native.py).
 *
 * Codec: a jute record's decode/encode/encode_into, driven by the same field declarations as
 * the generated Python codec in core/jute.py, for records of fixed fields, buffers, ustrings,
 * nested such records and interned ACL vectors. Decoding fills the slotted dataclass's slots
 * directly (a record's __init__ only assigns them). Anything this code does not handle the
 * same way as the Python codec in its fast path (an interned vector other than the table's
 * last, a value out of range, a string with lone surrogates, a bytes-like that is not bytes)
 * is handed to the Python codec, so errors and results stay the Python codec's.
 *
 * NodeView: ZooKeeper's node digest (CRC32 of path, data and persisted stat) and a node's
 * client Stat bytes, from a core.tree.Node's slots; out-of-range values go to the Python
 * functions, which raise what they raise.
 *
 * multi_decoder: core.requests's decode_multi (a multi request's ops) with the records' Codecs.
 *
 * txn_encoder: core.txn's encode_txn (a log entry's bytes) from a Txn's slots and the body
 * records' Codecs; any txn it does not encode alike goes to the Python encode_txn.
 *
 * set_data_prepper, create_prepper, delete_prepper, set_data_applier, create_applier,
 * delete_applier: the common cases of core.prep's Prep._set_data, _create and _delete and of
 * core.tree's DataTree._set_data, _create and _delete; anything else (an error, a container, a
 * TTL, an odd value) goes to the Python method before anything is changed.
 *
 * The request pipeline's plumbing (split_frames, requester, submitter, prepper, applier,
 * tree_applier, multi_applier, committer, completer, ms_clock): a read's frames, a write
 * request's intake (a multi's too), a getData or exists without a watch answered from the
 * node's cached reply, the prep's dispatch (a multi of plain ops included) and its forgetting of
 * applied changes, a txn's apply (a multi's sub-txns) and commit with its reply, and the
 * completion of replies in request order, reading and writing the slots of the objects they
 * touch (a Layout: a class and its slots' offsets); anything out of the common run goes to the
 * Python function or method before anything is changed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

/* -- helpers ------------------------------------------------------------------------------ */

/* The byte offset of slot `name` in instances of `type`, or -1 with an exception set. */
static Py_ssize_t
slot_offset(PyTypeObject *type, PyObject *name)
{
    PyObject *d = PyObject_GetAttr((PyObject *)type, name);
    if (d == NULL)
        return -1;
    Py_ssize_t off = -1;
    if (Py_IS_TYPE(d, &PyMemberDescr_Type)) {
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type == T_OBJECT_EX && !(m->flags & READONLY))
            off = m->offset;
    }
    Py_DECREF(d);
    if (off < 0)
        PyErr_Format(PyExc_TypeError, "%U is not a writable slot of %s", name, type->tp_name);
    return off;
}

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

/* `count` slot offsets of `type`, by name, as bytes; NULL with an exception. */
static PyObject *
slot_offsets(PyObject *type, const char **names, int count)
{
    PyObject *offsets = PyBytes_FromStringAndSize(NULL, count * sizeof(Py_ssize_t));
    if (offsets == NULL)
        return NULL;
    Py_ssize_t *off = (Py_ssize_t *)PyBytes_AS_STRING(offsets);
    for (int i = 0; i < count; i++) {
        PyObject *name = PyUnicode_FromString(names[i]);
        off[i] = name == NULL ? -1 : slot_offset((PyTypeObject *)type, name);
        Py_XDECREF(name);
        if (off[i] < 0) {
            Py_DECREF(offsets);
            return NULL;
        }
    }
    return offsets;
}

static inline uint32_t
be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t
be64(const unsigned char *p)
{
    return ((uint64_t)be32(p) << 32) | be32(p + 4);
}

static inline void
put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static inline void
put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

/* A Python int as a signed value in [lo, hi]; 0 (no exception) when it is not one. */
static int
as_int64(PyObject *v, int64_t lo, int64_t hi, int64_t *out)
{
    if (!PyLong_Check(v))
        return 0;
    long long x;
#if PY_VERSION_HEX >= 0x030C0000
    if (PyUnstable_Long_IsCompact((PyLongObject *)v)) {
        x = PyUnstable_Long_CompactValue((PyLongObject *)v);
        goto ranged;
    }
#else
    Py_ssize_t size = Py_SIZE(v);  /* a value of one digit: read in place */
    if (size >= -1 && size <= 1) {
        x = size == 0 ? 0 : size * (long long)((PyLongObject *)v)->ob_digit[0];
        goto ranged;
    }
#endif
    int overflow;
    x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (x == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
ranged:
    if (x < lo || x > hi)
        return 0;
    *out = x;
    return 1;
}

/* A 2-tuple of `a` and `b`, taking both references (released when it cannot be made). */
static PyObject *
pair_of(PyObject *a, PyObject *b)
{
    PyObject *t = PyTuple_New(2);
    if (t == NULL) {
        Py_DECREF(a);
        Py_DECREF(b);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, a);
    PyTuple_SET_ITEM(t, 1, b);
    return t;
}

/* The C function `def` with `spec` as its self (taking the reference; NULL passes through). */
static PyObject *
function_of(PyMethodDef *def, PyObject *spec)
{
    if (spec == NULL)
        return NULL;
    PyObject *f = PyCFunction_NewEx(def, spec, NULL);
    Py_DECREF(spec);
    return f;
}

/* A growable output buffer; `small` holds short records without an allocation. */
typedef struct {
    unsigned char *p;
    Py_ssize_t len, cap;
    unsigned char small[256];
} Out;

static void
out_init(Out *o)
{
    o->p = o->small;
    o->len = 0;
    o->cap = sizeof(o->small);
}

static void
out_free(Out *o)
{
    if (o->p != o->small)
        PyMem_Free(o->p);
}

static unsigned char *
out_reserve(Out *o, Py_ssize_t n)
{
    if (o->len + n > o->cap) {
        Py_ssize_t cap = (o->len + n) * 2;
        unsigned char *p = PyMem_Malloc(cap);
        if (p == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        memcpy(p, o->p, o->len);
        out_free(o);
        o->p = p;
        o->cap = cap;
    }
    unsigned char *at = o->p + o->len;
    o->len += n;
    return at;
}

/* -- CRC32 (IEEE, as zlib.crc32 and java.util.zip.CRC32) ------------------------------------ */

/* Slicing-by-8: crc_table[k][b] is the CRC of byte b followed by k zero bytes, so eight
   bytes are folded in per step instead of one (the byte-wise loop is a chain of dependent
   table loads: it was most of a node digest's time). */
static uint32_t crc_table[8][256];

static void
crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (int k = 1; k < 8; k++)
        for (uint32_t i = 0; i < 256; i++)
            crc_table[k][i] = (crc_table[k - 1][i] >> 8) ^ crc_table[0][crc_table[k - 1][i] & 0xff];
}

static inline uint32_t
load_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t
crc32_update(uint32_t crc, const unsigned char *p, Py_ssize_t n)
{
    crc = ~crc;
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t lo = load_le32(p) ^ crc, hi = load_le32(p + 4);
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
              crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
              crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
    }
    while (n--)
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* -- Codec -------------------------------------------------------------------------------- */

enum { F_INT = 'i', F_LONG = 'q', F_BOOL = '?', F_BUFFER = 'b', F_USTRING = 's', F_RECORD = 'r',
       F_INTERNED = 'I' };

typedef struct {
    char kind;
    Py_ssize_t offset;
    PyObject *sub;  /* F_RECORD: the nested record's Codec; F_INTERNED: the VectorTable */
} Field;

typedef struct Codec {
    PyObject_VAR_HEAD
    PyTypeObject *cls;
    PyObject *error;       /* JuteError */
    PyObject *truncated;   /* "truncated <record>" */
    PyObject *py_decode, *py_encode, *py_encode_into;  /* the Python codec */
    Field fields[1];
} Codec;

static PyTypeObject CodecType;
static PyObject *str_last, *str_bytes_of;

/* Status of a decode step that did not produce a record. */
enum { D_ERROR = -1, D_FALLBACK = -2 };

/* Decode `c`'s record at *off in buf[0:size]: a new reference, or NULL with *status D_ERROR
 * (an exception set) or D_FALLBACK (no exception: the Python codec must decode it). A
 * truncation is reported as the outermost record's, `top`, as the Python codec does. */
static PyObject *
codec_decode_at(Codec *c, Codec *top, const unsigned char *buf, Py_ssize_t size, Py_ssize_t *off,
                int *status)
{
    PyObject *obj = c->cls->tp_alloc(c->cls, 0);
    if (obj == NULL) {
        *status = D_ERROR;
        return NULL;
    }
    Py_ssize_t at = *off;
    for (Py_ssize_t i = 0; i < Py_SIZE(c); i++) {
        Field *f = &c->fields[i];
        PyObject *v;
        switch (f->kind) {
        case F_INT:
            if (size - at < 4)
                goto truncated;
            v = PyLong_FromLong((int32_t)be32(buf + at));
            at += 4;
            break;
        case F_LONG:
            if (size - at < 8)
                goto truncated;
            v = PyLong_FromLongLong((int64_t)be64(buf + at));
            at += 8;
            break;
        case F_BOOL:
            if (size - at < 1)
                goto truncated;
            v = Py_NewRef(buf[at] ? Py_True : Py_False);
            at += 1;
            break;
        case F_BUFFER:
        case F_USTRING: {
            if (size - at < 4)
                goto truncated;
            int32_t n = (int32_t)be32(buf + at);
            at += 4;
            if (n < 0) {
                v = Py_NewRef(Py_None);
                break;
            }
            if (n > size - at) {
                PyErr_SetString(c->error, "field runs past the end");
                goto error;
            }
            if (f->kind == F_BUFFER) {
                v = PyBytes_FromStringAndSize((const char *)buf + at, n);
            } else {
                /* invalid UTF-8 decodes with replacement characters, as Java's String does */
                v = PyUnicode_DecodeUTF8((const char *)buf + at, n, NULL);
                if (v == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                    PyErr_Clear();
                    v = PyUnicode_DecodeUTF8((const char *)buf + at, n, "replace");
                }
            }
            at += n;
            break;
        }
        case F_RECORD:
            v = codec_decode_at((Codec *)f->sub, top, buf, size, &at, status);
            if (v == NULL) {
                Py_DECREF(obj);
                return NULL;
            }
            break;
        case F_INTERNED: {
            PyObject *last = PyObject_GetAttr(f->sub, str_last);
            if (last == NULL)
                goto error;
            PyObject *raw = PyTuple_Check(last) && PyTuple_GET_SIZE(last) == 2 ? PyTuple_GET_ITEM(last, 0) : NULL;
            if (raw == NULL || !PyBytes_Check(raw) || PyBytes_GET_SIZE(raw) > size - at
                    || memcmp(PyBytes_AS_STRING(raw), buf + at, PyBytes_GET_SIZE(raw)) != 0) {
                Py_DECREF(last);
                Py_DECREF(obj);
                *status = D_FALLBACK;
                return NULL;
            }
            at += PyBytes_GET_SIZE(raw);
            v = Py_NewRef(PyTuple_GET_ITEM(last, 1));
            Py_DECREF(last);
            break;
        }
        default:
            PyErr_SetString(PyExc_SystemError, "bad codec field");
            goto error;
        }
        if (v == NULL)
            goto error;
        SLOT(obj, f->offset) = v;
    }
    *off = at;
    return obj;
truncated:
    PyErr_SetObject(c->error, top->truncated);
error:
    Py_DECREF(obj);
    *status = D_ERROR;
    return NULL;
}

static PyObject *
codec_decode(Codec *c, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "decode(buf, off=0)");
        return NULL;
    }
    Py_ssize_t off = 0;
    if (nargs == 2) {
        off = PyLong_AsSsize_t(args[1]);
        if (off == -1 && PyErr_Occurred())
            return NULL;
    }
    Py_buffer view;
    if (off < 0 || PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        return PyObject_Vectorcall(c->py_decode, args, nargs, NULL);
    }
    int status = 0;
    Py_ssize_t at = off;
    PyObject *obj = off <= view.len ? codec_decode_at(c, c, view.buf, view.len, &at, &status) : NULL;
    PyBuffer_Release(&view);
    if (obj == NULL) {
        if (status == D_ERROR)
            return NULL;
        return PyObject_Vectorcall(c->py_decode, args, nargs, NULL);  /* past the end, or D_FALLBACK */
    }
    PyObject *end = PyLong_FromSsize_t(at);
    if (end == NULL) {
        Py_DECREF(obj);
        return NULL;
    }
    return pair_of(obj, end);
}

/* Append `obj`'s encoding; 1 done, 0 the Python codec must encode it, -1 an exception. */
static int
codec_encode_to(Codec *c, PyObject *obj, Out *o)
{
    if (!PyObject_TypeCheck(obj, c->cls))
        return 0;
    for (Py_ssize_t i = 0; i < Py_SIZE(c); i++) {
        Field *f = &c->fields[i];
        PyObject *v = SLOT(obj, f->offset);
        if (v == NULL)
            return 0;
        unsigned char *p;
        int64_t x;
        switch (f->kind) {
        case F_INT:
            if (!as_int64(v, INT32_MIN, INT32_MAX, &x))
                return 0;
            if ((p = out_reserve(o, 4)) == NULL)
                return -1;
            put32(p, (uint32_t)x);
            break;
        case F_LONG:
            if (!as_int64(v, INT64_MIN, INT64_MAX, &x))
                return 0;
            if ((p = out_reserve(o, 8)) == NULL)
                return -1;
            put64(p, (uint64_t)x);
            break;
        case F_BOOL:
            if (!PyBool_Check(v))
                return 0;
            if ((p = out_reserve(o, 1)) == NULL)
                return -1;
            *p = v == Py_True;
            break;
        case F_BUFFER:
        case F_USTRING: {
            const char *data;
            Py_ssize_t n;
            if (v == Py_None) {
                if ((p = out_reserve(o, 4)) == NULL)
                    return -1;
                put32(p, 0xffffffffu);
                break;
            }
            if (f->kind == F_BUFFER) {
                if (!PyBytes_CheckExact(v))
                    return 0;
                data = PyBytes_AS_STRING(v);
                n = PyBytes_GET_SIZE(v);
            } else {
                if (!PyUnicode_CheckExact(v))
                    return 0;
                data = PyUnicode_AsUTF8AndSize(v, &n);
                if (data == NULL) {  /* lone surrogates: the Python codec passes them */
                    PyErr_Clear();
                    return 0;
                }
            }
            if (n > INT32_MAX)
                return 0;
            if ((p = out_reserve(o, 4 + n)) == NULL)
                return -1;
            put32(p, (uint32_t)n);
            memcpy(p + 4, data, n);
            break;
        }
        case F_RECORD: {
            int r = codec_encode_to((Codec *)f->sub, v, o);
            if (r != 1)
                return r;
            break;
        }
        case F_INTERNED: {
            PyObject *bytes_of = PyObject_GetAttr(f->sub, str_bytes_of);
            if (bytes_of == NULL)
                return -1;
            PyObject *key = PyLong_FromVoidPtr(v);
            PyObject *raw = key != NULL && PyDict_Check(bytes_of) ? PyDict_GetItemWithError(bytes_of, key) : NULL;
            Py_XDECREF(key);
            if (raw == NULL || !PyBytes_Check(raw)) {
                Py_DECREF(bytes_of);
                return PyErr_Occurred() ? -1 : 0;
            }
            p = out_reserve(o, PyBytes_GET_SIZE(raw));
            if (p != NULL)
                memcpy(p, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw));
            Py_DECREF(bytes_of);
            if (p == NULL)
                return -1;
            break;
        }
        default:
            PyErr_SetString(PyExc_SystemError, "bad codec field");
            return -1;
        }
    }
    return 1;
}

/* An encoder: 1 when it wrote `obj` to `o`, 0 when the Python code must encode it, -1 with an
 * exception set. */
typedef int (*encoder)(PyObject *self, PyObject *obj, Out *o);

/* What `encode` writes for `obj`, as bytes; NULL when it did not return 1 (*r says why). */
static PyObject *
encoded_bytes(encoder encode, PyObject *self, PyObject *obj, int *r)
{
    Out o;
    out_init(&o);
    *r = encode(self, obj, &o);
    PyObject *b = *r == 1 ? PyBytes_FromStringAndSize((const char *)o.p, o.len) : NULL;
    out_free(&o);
    return b;
}

static int
codec_encoder(PyObject *c, PyObject *obj, Out *o)
{
    return codec_encode_to((Codec *)c, obj, o);
}

/* `obj`'s bytes, or NULL: with an exception set, or without one when the Python codec must
 * encode it. */
static PyObject *
codec_bytes(Codec *c, PyObject *obj)
{
    int r;
    return encoded_bytes(codec_encoder, (PyObject *)c, obj, &r);
}

static PyObject *
codec_encode(Codec *c, PyObject *obj)
{
    PyObject *b = codec_bytes(c, obj);
    if (b == NULL && !PyErr_Occurred())
        return PyObject_CallOneArg(c->py_encode, obj);
    return b;
}

static PyObject *
codec_encode_into(Codec *c, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "encode_into(obj, parts)");
        return NULL;
    }
    if (!PyList_Check(args[1]))
        return PyObject_Vectorcall(c->py_encode_into, args, nargs, NULL);
    PyObject *b = codec_bytes(c, args[0]);
    if (b == NULL) {
        if (PyErr_Occurred())
            return NULL;
        return PyObject_Vectorcall(c->py_encode_into, args, nargs, NULL);
    }
    int r = PyList_Append(args[1], b);
    Py_DECREF(b);
    return r < 0 ? NULL : Py_NewRef(args[1]);
}

/* Codec(cls, error, fields, py_decode, py_encode, py_encode_into); fields: a tuple of
 * (kind, slot name, Codec | VectorTable | None). */
static PyObject *
codec_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *cls, *error, *fields, *py_decode, *py_encode, *py_encode_into;
    if (!PyArg_ParseTuple(args, "O!OO!OOO:Codec", &PyType_Type, &cls, &error, &PyTuple_Type, &fields,
                          &py_decode, &py_encode, &py_encode_into))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(fields);
    Codec *c = PyObject_GC_NewVar(Codec, type, n);
    if (c == NULL)
        return NULL;
    c->cls = NULL;
    c->error = c->truncated = c->py_decode = c->py_encode = c->py_encode_into = NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        c->fields[i].sub = NULL;
    c->cls = (PyTypeObject *)Py_NewRef(cls);
    c->error = Py_NewRef(error);
    c->py_decode = Py_NewRef(py_decode);
    c->py_encode = Py_NewRef(py_encode);
    c->py_encode_into = Py_NewRef(py_encode_into);
    PyObject *cls_name = PyType_GetName((PyTypeObject *)cls);
    c->truncated = cls_name == NULL ? NULL : PyUnicode_FromFormat("truncated %U", cls_name);
    Py_XDECREF(cls_name);
    if (c->truncated == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *kind;
        PyObject *name, *sub;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(fields, i), "sUO:field", &kind, &name, &sub))
            goto fail;
        Field *f = &c->fields[i];
        f->kind = kind[0];
        if (strlen(kind) != 1 || !strchr("iq?bsrI", f->kind)) {
            PyErr_Format(PyExc_ValueError, "unknown field kind %s", kind);
            goto fail;
        }
        if (f->kind == F_RECORD && !Py_IS_TYPE(sub, &CodecType)) {
            PyErr_SetString(PyExc_TypeError, "a nested record field needs the record's Codec");
            goto fail;
        }
        f->offset = slot_offset((PyTypeObject *)cls, name);
        if (f->offset < 0)
            goto fail;
        f->sub = sub == Py_None ? NULL : Py_NewRef(sub);
    }
    PyObject_GC_Track(c);
    return (PyObject *)c;
fail:
    Py_DECREF(c);
    return NULL;
}

static int
codec_traverse(Codec *c, visitproc visit, void *arg)
{
    Py_VISIT(c->cls);
    Py_VISIT(c->error);
    Py_VISIT(c->py_decode);
    Py_VISIT(c->py_encode);
    Py_VISIT(c->py_encode_into);
    for (Py_ssize_t i = 0; i < Py_SIZE(c); i++)
        Py_VISIT(c->fields[i].sub);
    return 0;
}

static int
codec_clear(Codec *c)
{
    Py_CLEAR(c->cls);
    Py_CLEAR(c->error);
    Py_CLEAR(c->truncated);
    Py_CLEAR(c->py_decode);
    Py_CLEAR(c->py_encode);
    Py_CLEAR(c->py_encode_into);
    for (Py_ssize_t i = 0; i < Py_SIZE(c); i++)
        Py_CLEAR(c->fields[i].sub);
    return 0;
}

static void
codec_dealloc(Codec *c)
{
    PyObject_GC_UnTrack(c);
    codec_clear(c);
    PyObject_GC_Del(c);
}

static PyMethodDef codec_methods[] = {
    {"decode", (PyCFunction)(void (*)(void))codec_decode, METH_FASTCALL,
     "decode(buf, off=0) -> (record, offset after it); raises JuteError."},
    {"encode", (PyCFunction)codec_encode, METH_O, "encode(record) -> bytes."},
    {"encode_into", (PyCFunction)(void (*)(void))codec_encode_into, METH_FASTCALL,
     "encode_into(record, parts) -> parts, with the record's bytes appended."},
    {NULL},
};

static PyTypeObject CodecType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "core._native.Codec",
    .tp_doc = "One jute record's codec (see core/native.py).",
    .tp_basicsize = sizeof(Codec) - sizeof(Field),
    .tp_itemsize = sizeof(Field),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = codec_new,
    .tp_traverse = (traverseproc)codec_traverse,
    .tp_clear = (inquiry)codec_clear,
    .tp_dealloc = (destructor)codec_dealloc,
    .tp_methods = codec_methods,
};

/* -- constructors -------------------------------------------------------------------------- */

/* A slotted dataclass's constructor, installed as the class's own vectorcall (what
 * `cls(...)` runs): it allocates the instance and fills its slots from the arguments,
 * positional or by name, and the trailing fields' defaults, as the dataclass's __init__ would
 * assign them. A call it cannot place (too many arguments, an unknown or repeated name, a
 * required field missing) goes to type.__call__, which raises what __init__ raises. The
 * Maker, kept in the class's dict, holds the layout. An `untracked` class's instances are
 * taken out of the cyclic garbage collector (see core/native.py). */
typedef struct {
    PyObject_VAR_HEAD
    PyObject *names;     /* the fields' names, in order, interned */
    PyObject *defaults;  /* the defaults of the last len(defaults) fields */
    int untracked;
    Py_ssize_t offsets[1];
} Maker;

static PyTypeObject MakerType;
static PyObject *str_maker;

#define MAKER_MAX_FIELDS 32

/* type.__call__(cls, *args, **kwargs) from vectorcall arguments. */
static PyObject *
call_type(PyObject *cls, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    PyObject *tuple = PyTuple_New(nargs), *kwargs = nkw ? PyDict_New() : NULL, *result = NULL;
    if (tuple == NULL || (nkw && kwargs == NULL))
        goto done;
    for (Py_ssize_t i = 0; i < nargs; i++)
        PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[i]));
    for (Py_ssize_t k = 0; k < nkw; k++)
        if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, k), args[nargs + k]) < 0)
            goto done;
    result = PyType_Type.tp_call(cls, tuple, kwargs);
done:
    Py_XDECREF(tuple);
    Py_XDECREF(kwargs);
    return result;
}

static PyObject *
construct(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyTypeObject *cls = (PyTypeObject *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *found = PyDict_GetItemWithError(cls->tp_dict, str_maker);
    if (found == NULL || !Py_IS_TYPE(found, &MakerType))
        return PyErr_Occurred() ? NULL : call_type(callable, args, nargs, kwnames);
    Maker *mk = (Maker *)found;
    Py_ssize_t n = Py_SIZE(mk);
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    Py_ssize_t required = n - PyTuple_GET_SIZE(mk->defaults);
    PyObject *values[MAKER_MAX_FIELDS];
    if (nargs > n)
        return call_type(callable, args, nargs, kwnames);
    for (Py_ssize_t i = 0; i < n; i++)
        values[i] = i < nargs ? args[i] : NULL;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        Py_ssize_t j = 0;
        while (j < n && PyTuple_GET_ITEM(mk->names, j) != key)
            j++;
        if (j == n)  /* not the interned name: compare the text */
            for (j = 0; j < n && PyUnicode_Compare(PyTuple_GET_ITEM(mk->names, j), key) != 0; j++)
                ;
        if (PyErr_Occurred())
            return NULL;
        if (j == n || values[j] != NULL)
            return call_type(callable, args, nargs, kwnames);
        values[j] = args[nargs + k];
    }
    for (Py_ssize_t i = nargs; i < n; i++)
        if (values[i] == NULL) {
            if (i < required)
                return call_type(callable, args, nargs, kwnames);
            values[i] = PyTuple_GET_ITEM(mk->defaults, i - required);
        }
    PyObject *obj = cls->tp_alloc(cls, 0);
    if (obj == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        SLOT(obj, mk->offsets[i]) = Py_NewRef(values[i]);
    if (mk->untracked)
        PyObject_GC_UnTrack(obj);
    return obj;
}

/* Whether `cls` has an untracked constructor (its instances stay out of the collector). */
static int
untracked_class(PyTypeObject *cls)
{
    PyObject *found = PyDict_GetItemWithError(cls->tp_dict, str_maker);
    return found != NULL && Py_IS_TYPE(found, &MakerType) && ((Maker *)found)->untracked;
}

/* install_constructor(cls, names, defaults, untracked): see above. */
static PyObject *
install_constructor(PyObject *module, PyObject *args)
{
    PyObject *cls_obj, *names, *defaults;
    int untracked;
    if (!PyArg_ParseTuple(args, "O!O!O!p:install_constructor", &PyType_Type, &cls_obj, &PyTuple_Type, &names,
                          &PyTuple_Type, &defaults, &untracked))
        return NULL;
    PyTypeObject *cls = (PyTypeObject *)cls_obj;
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    if (!(cls->tp_flags & Py_TPFLAGS_HEAPTYPE) || cls->tp_vectorcall != NULL || n > MAKER_MAX_FIELDS
            || PyTuple_GET_SIZE(defaults) > n) {
        PyErr_Format(PyExc_TypeError, "%s: not a class this constructor can serve", cls->tp_name);
        return NULL;
    }
    Maker *mk = PyObject_GC_NewVar(Maker, &MakerType, n);
    if (mk == NULL)
        return NULL;
    mk->defaults = Py_NewRef(defaults);
    mk->untracked = untracked;
    mk->names = PyTuple_New(n);
    if (mk->names == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        if (!PyUnicode_CheckExact(name)) {
            PyErr_SetString(PyExc_TypeError, "field names are str");
            goto fail;
        }
        Py_INCREF(name);
        PyUnicode_InternInPlace(&name);
        PyTuple_SET_ITEM(mk->names, i, name);
        mk->offsets[i] = slot_offset(cls, name);
        if (mk->offsets[i] < 0)
            goto fail;
    }
    PyObject_GC_Track(mk);
    if (PyObject_SetAttr(cls_obj, str_maker, (PyObject *)mk) < 0)
        goto fail;
    Py_DECREF(mk);
    cls->tp_vectorcall = construct;
    Py_RETURN_NONE;
fail:
    Py_DECREF(mk);
    return NULL;
}

static int
maker_traverse(Maker *mk, visitproc visit, void *arg)
{
    Py_VISIT(mk->names);
    Py_VISIT(mk->defaults);
    return 0;
}

static int
maker_clear(Maker *mk)
{
    Py_CLEAR(mk->names);
    Py_CLEAR(mk->defaults);
    return 0;
}

static void
maker_dealloc(Maker *mk)
{
    PyObject_GC_UnTrack(mk);
    maker_clear(mk);
    PyObject_GC_Del(mk);
}

static PyTypeObject MakerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "core._native.Maker",
    .tp_doc = "The slot layout a class's C constructor fills (see install_constructor).",
    .tp_basicsize = sizeof(Maker) - sizeof(Py_ssize_t),
    .tp_itemsize = sizeof(Py_ssize_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)maker_traverse,
    .tp_clear = (inquiry)maker_clear,
    .tp_dealloc = (destructor)maker_dealloc,
};

/* -- NodeView ----------------------------------------------------------------------------- */

/* The slots of a node read as values (up to N_VALUES), then the others. */
enum { N_DATA, N_CZXID, N_MZXID, N_CTIME, N_MTIME, N_VERSION, N_CVERSION, N_AVERSION, N_OWNER,
       N_PZXID, N_CHILDREN, N_VALUES, N_ACL = N_VALUES, N_DIGEST, N_REPLY, N_CHILDREN_REPLY, N_COUNT };
static const char *node_slots[N_COUNT] = {"data", "czxid", "mzxid", "ctime", "mtime", "version",
                                          "cversion", "aversion", "ephemeral_owner", "pzxid",
                                          "children", "acl", "digest", "reply", "children_reply"};

typedef struct {
    PyObject_HEAD
    PyTypeObject *node_type;
    PyObject *py_digest, *py_stat_bytes;  /* the Python functions */
    Py_ssize_t off[N_COUNT];
} NodeView;

static PyTypeObject NodeViewType;

/* The slots of `node` as int64s (data's length for N_DATA, the children count for N_CHILDREN);
 * 0 when one is missing or not an int in range. */
static int
node_values(NodeView *nv, PyObject *node, int64_t *v)
{
    if (!PyObject_TypeCheck(node, nv->node_type))
        return 0;
    for (int i = 0; i < N_VALUES; i++) {
        PyObject *x = SLOT(node, nv->off[i]);
        if (x == NULL)
            return 0;
        if (i == N_DATA) {
            if (!PyBytes_CheckExact(x))
                return 0;
            v[i] = PyBytes_GET_SIZE(x);
        } else if (i == N_CHILDREN) {
            if (!PyAnySet_CheckExact(x))
                return 0;
            v[i] = PySet_GET_SIZE(x);
        } else {
            int wide = i == N_CZXID || i == N_MZXID || i == N_CTIME || i == N_MTIME || i == N_OWNER || i == N_PZXID;
            if (!as_int64(x, wide ? INT64_MIN : INT32_MIN, wide ? INT64_MAX : INT32_MAX, &v[i]))
                return 0;
        }
    }
    return 1;
}

/* ZooKeeper's node digest from the path's UTF-8 bytes, the data and the node's values. */
static uint32_t
digest_of(const char *p, Py_ssize_t plen, PyObject *data, const int64_t *v)
{
    if (plen > 10 && memcmp(p, "/zookeeper/", 11) == 0)
        return 0;
    uint32_t crc = plen == 1 && p[0] == '/' ? 0 : crc32_update(0, (const unsigned char *)p, plen);
    crc = crc32_update(crc, (const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
    unsigned char s[60];  /* ">qqqqqiiiq": czxid mzxid pzxid ctime mtime version cversion aversion owner */
    put64(s, (uint64_t)v[N_CZXID]);
    put64(s + 8, (uint64_t)v[N_MZXID]);
    put64(s + 16, (uint64_t)v[N_PZXID]);
    put64(s + 24, (uint64_t)v[N_CTIME]);
    put64(s + 32, (uint64_t)v[N_MTIME]);
    put32(s + 40, (uint32_t)v[N_VERSION]);
    put32(s + 44, (uint32_t)v[N_CVERSION]);
    put32(s + 48, (uint32_t)v[N_AVERSION]);
    put64(s + 52, (uint64_t)v[N_OWNER]);
    return crc32_update(crc, s, sizeof(s));
}

static PyObject *
nodeview_digest(NodeView *nv, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "digest(path, node)");
        return NULL;
    }
    PyObject *path = args[0], *node = args[1];
    int64_t v[N_VALUES];
    Py_ssize_t plen;
    const char *p = PyUnicode_CheckExact(path) ? PyUnicode_AsUTF8AndSize(path, &plen) : NULL;
    if (p == NULL || !node_values(nv, node, v)) {
        PyErr_Clear();
        return PyObject_Vectorcall(nv->py_digest, args, nargs, NULL);
    }
    return PyLong_FromUnsignedLong(digest_of(p, plen, SLOT(node, nv->off[N_DATA]), v));
}

#define CONTAINER_OWNER INT64_MIN
#define TTL_MASK ((int64_t)0xff00000000000000ull)

/* The client Stat's bytes from a node's values; NULL with an exception. */
static PyObject *
stat_of(const int64_t *v)
{
    int64_t n = v[N_CHILDREN];
    int32_t cversion = (int32_t)(uint32_t)(v[N_CVERSION] * 2 - n);  /* Java int arithmetic */
    int64_t owner = v[N_OWNER];
    /* a container's or a TTL node's marker is not a session: the client sees 0 */
    if (owner < 0 && (owner == CONTAINER_OWNER || (owner & (int64_t)0xffffff0000000000ull) == TTL_MASK))
        owner = 0;
    PyObject *b = PyBytes_FromStringAndSize(NULL, 68);
    if (b == NULL)
        return NULL;
    unsigned char *s = (unsigned char *)PyBytes_AS_STRING(b);  /* ">qqqqiiiqiiq" */
    put64(s, (uint64_t)v[N_CZXID]);
    put64(s + 8, (uint64_t)v[N_MZXID]);
    put64(s + 16, (uint64_t)v[N_CTIME]);
    put64(s + 24, (uint64_t)v[N_MTIME]);
    put32(s + 32, (uint32_t)v[N_VERSION]);
    put32(s + 36, (uint32_t)cversion);
    put32(s + 40, (uint32_t)v[N_AVERSION]);
    put64(s + 44, (uint64_t)owner);
    put32(s + 52, (uint32_t)v[N_DATA]);
    put32(s + 56, (uint32_t)n);
    put64(s + 60, (uint64_t)v[N_PZXID]);
    return b;
}

static PyObject *
nodeview_stat_bytes(NodeView *nv, PyObject *node)
{
    int64_t v[N_VALUES];
    if (!node_values(nv, node, v) || v[N_DATA] > INT32_MAX || v[N_CHILDREN] > INT32_MAX)
        return PyObject_CallOneArg(nv->py_stat_bytes, node);
    return stat_of(v);
}

enum { R_ERROR = -1, R_PYTHON = 0, R_WRITTEN = 1, R_SKIPPED = 2 };

/* Append one node's snapshot record (ustring path, buffer data, long aclRef, StatPersisted):
 * R_WRITTEN, R_PYTHON (the Python record function must write it) or R_ERROR (an exception). */
static int
snapshot_record(NodeView *nv, PyObject *path, PyObject *node, const int64_t *v, PyObject *refs,
                PyObject *open_acl, Out *o)
{
    PyObject *acl = SLOT(node, nv->off[N_ACL]);
    int64_t ref = -1;
    if (acl != open_acl) {
        PyObject *key = PyLong_FromVoidPtr(acl);
        if (key == NULL)
            return R_ERROR;
        PyObject *entry = PyDict_GetItemWithError(refs, key);
        Py_DECREF(key);
        if (entry == NULL && PyErr_Occurred())
            return R_ERROR;
        if (entry != NULL) {
            if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2
                    || !as_int64(PyTuple_GET_ITEM(entry, 1), INT64_MIN, INT64_MAX, &ref))
                return R_PYTHON;
        }
    }
    Py_ssize_t plen;
    const char *p = PyUnicode_AsUTF8AndSize(path, &plen);
    if (p == NULL) {  /* lone surrogates: the Python record encodes them */
        PyErr_Clear();
        return R_PYTHON;
    }
    if (plen == 1 && p[0] == '/')
        plen = 0;
    PyObject *data = SLOT(node, nv->off[N_DATA]);
    Py_ssize_t dlen = PyBytes_GET_SIZE(data);
    unsigned char *w = out_reserve(o, 4 + plen + 4 + dlen + 68);
    if (w == NULL)
        return R_ERROR;
    put32(w, (uint32_t)plen);
    memcpy(w + 4, p, plen);
    w += 4 + plen;
    put32(w, (uint32_t)dlen);
    memcpy(w + 4, PyBytes_AS_STRING(data), dlen);
    w += 4 + dlen;
    put64(w, (uint64_t)ref);  /* ">qqqqqiiiqq": ref, czxid mzxid ctime mtime, version cversion aversion, owner pzxid */
    put64(w + 8, (uint64_t)v[N_CZXID]);
    put64(w + 16, (uint64_t)v[N_MZXID]);
    put64(w + 24, (uint64_t)v[N_CTIME]);
    put64(w + 32, (uint64_t)v[N_MTIME]);
    put32(w + 40, (uint32_t)v[N_VERSION]);
    put32(w + 44, (uint32_t)v[N_CVERSION]);
    put32(w + 48, (uint32_t)v[N_AVERSION]);
    put64(w + 52, (uint64_t)v[N_OWNER]);
    put64(w + 60, (uint64_t)v[N_PZXID]);
    return R_WRITTEN;
}

/* Push `path`'s children's paths on `stack`, in reverse sorted order (popped in order). */
static int
push_children(PyObject *stack, PyObject *path, PyObject *children)
{
    if (PySet_GET_SIZE(children) == 0)
        return 0;
    PyObject *names = PySequence_List(children);
    if (names == NULL || PyList_Sort(names) < 0 || PyList_Reverse(names) < 0) {
        Py_XDECREF(names);
        return -1;
    }
    int root = PyUnicode_GET_LENGTH(path) == 1 && PyUnicode_READ_CHAR(path, 0) == '/';
    PyObject *prefix = root ? PyUnicode_FromString("/") : PyUnicode_FromFormat("%U/", path);
    int status = prefix == NULL ? -1 : 0;
    for (Py_ssize_t i = 0; status == 0 && i < PyList_GET_SIZE(names); i++) {
        PyObject *child = PyUnicode_Concat(prefix, PyList_GET_ITEM(names, i));
        status = child == NULL || PyList_Append(stack, child) < 0 ? -1 : 0;
        Py_XDECREF(child);
    }
    Py_XDECREF(prefix);
    Py_DECREF(names);
    return status;
}

/* write_nodes(nodes, stack, refs, open_acl, upto, limit, py_record) -> bytes: see
 * core.snapshot._write_nodes, which this is in C. */
static PyObject *
nodeview_write_nodes(NodeView *nv, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7 || !PyDict_Check(args[0]) || !PyList_Check(args[1]) || !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "write_nodes(nodes, stack, refs, open_acl, upto, limit, py_record)");
        return NULL;
    }
    PyObject *nodes = args[0], *stack = args[1], *refs = args[2], *open_acl = args[3], *py_record = args[6];
    int64_t upto;
    Py_ssize_t limit = PyLong_AsSsize_t(args[5]);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    if (!as_int64(args[4], INT64_MIN, INT64_MAX, &upto)) {
        PyErr_SetString(PyExc_OverflowError, "upto is not a long");
        return NULL;
    }
    Out o;
    out_init(&o);
    if (limit > 0 && out_reserve(&o, limit + 1024) == NULL)  /* one buffer for the whole chunk */
        return NULL;
    o.len = 0;
    PyObject *path = NULL;
    while (PyList_GET_SIZE(stack) > 0 && o.len < limit) {
        Py_ssize_t top = PyList_GET_SIZE(stack) - 1;
        path = Py_NewRef(PyList_GET_ITEM(stack, top));
        if (PyList_SetSlice(stack, top, top + 1, NULL) < 0)
            goto fail;
        PyObject *node = PyDict_GetItemWithError(nodes, path);
        if (node == NULL) {
            Py_CLEAR(path);
            if (PyErr_Occurred())
                goto fail;
            continue;  /* deleted meanwhile */
        }
        Py_INCREF(node);  /* the Python record function may run anything */
        int64_t v[N_VALUES];
        /* what became of the node: as snapshot_record answers (R_ERROR, R_PYTHON, R_WRITTEN), or R_SKIPPED */
        int done = PyUnicode_CheckExact(path) && node_values(nv, node, v) ? R_WRITTEN : R_PYTHON;
        if (done == R_WRITTEN && v[N_CZXID] > upto)
            done = R_SKIPPED;  /* created after the snapshot began: its create replays */
        else if (done == R_WRITTEN)
            done = snapshot_record(nv, path, node, v, refs, open_acl, &o);
        if (done == R_PYTHON) {  /* the Python record function: bytes, or None to skip */
            PyErr_Clear();
            PyObject *rec = PyObject_CallFunctionObjArgs(py_record, path, node, args[2], args[4], NULL);
            if (rec == NULL)
                goto fail_node;
            done = R_SKIPPED;
            if (rec != Py_None) {
                unsigned char *w = PyBytes_Check(rec) ? out_reserve(&o, PyBytes_GET_SIZE(rec)) : NULL;
                if (w == NULL) {
                    if (!PyErr_Occurred())
                        PyErr_SetString(PyExc_TypeError, "a node record is bytes or None");
                    Py_DECREF(rec);
                    goto fail_node;
                }
                memcpy(w, PyBytes_AS_STRING(rec), PyBytes_GET_SIZE(rec));
                done = R_WRITTEN;
            }
            Py_DECREF(rec);
        }
        if (done == R_WRITTEN) {
            PyObject *children = SLOT(node, nv->off[N_CHILDREN]);
            if (children == NULL || !PyAnySet_Check(children)) {
                PyErr_SetString(PyExc_TypeError, "a node's children are a set");
                done = R_ERROR;
            } else if (push_children(stack, path, children) < 0) {
                done = R_ERROR;
            }
        }
        Py_DECREF(node);
        Py_CLEAR(path);
        if (done == R_ERROR)
            goto fail;
        continue;
fail_node:
        Py_DECREF(node);
        goto fail;
    }
    PyObject *chunk = PyBytes_FromStringAndSize((const char *)o.p, o.len);
    out_free(&o);
    return chunk;
fail:
    Py_XDECREF(path);
    out_free(&o);
    return NULL;
}

/* read_plain_nodes(data, off, acls, nodes, no_children) -> (offset, digest sum): see
 * core.snapshot._read_nodes. Reads snapshot node records from `off` and places each in
 * `nodes` under its parent, as DataTree.add_node does, while they are plain: a whole record,
 * a new path in UTF-8 under a parent present, a known ACL ref, no ephemeral owner. Stops
 * before the first other record (the end marker among them), which the Python code reads. */
static PyObject *
nodeview_read_plain_nodes(NodeView *nv, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyBytes_Check(args[0]) || !PyDict_Check(args[2]) || !PyDict_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "read_plain_nodes(data, off, acls, nodes, no_children)");
        return NULL;
    }
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t off = PyLong_AsSsize_t(args[1]);
    if (off == -1 && PyErr_Occurred())
        return NULL;
    PyObject *acls = args[2], *nodes = args[3], *no_children = args[4];
    int untrack = untracked_class(nv->node_type);  /* as the Node class's own constructor */
    if (PyErr_Occurred())
        return NULL;
    uint64_t total = 0;
    while (off >= 0 && size - off >= 4) {
        Py_ssize_t at = off;
        int32_t plen = (int32_t)be32(buf + at);
        at += 4;
        if (plen < 2 || plen > size - at || buf[at] != '/')
            break;  /* the root (""), the end marker ("/"), a bad or truncated path */
        const char *p = (const char *)buf + at;
        at += plen;
        if (size - at < 4)
            break;
        int32_t dlen = (int32_t)be32(buf + at);
        at += 4;
        if (dlen < 0)
            dlen = 0;
        if (dlen > size - at || size - at - dlen < 68)
            break;
        const unsigned char *d = buf + at;
        at += dlen;
        const unsigned char *t = buf + at;  /* ">qqqqqiiiqq" */
        at += 68;
        int64_t v[N_VALUES];
        int64_t ref = (int64_t)be64(t);
        v[N_CZXID] = (int64_t)be64(t + 8);
        v[N_MZXID] = (int64_t)be64(t + 16);
        v[N_CTIME] = (int64_t)be64(t + 24);
        v[N_MTIME] = (int64_t)be64(t + 32);
        v[N_VERSION] = (int32_t)be32(t + 40);
        v[N_CVERSION] = (int32_t)be32(t + 44);
        v[N_AVERSION] = (int32_t)be32(t + 48);
        v[N_OWNER] = (int64_t)be64(t + 52);
        v[N_PZXID] = (int64_t)be64(t + 60);
        if (v[N_OWNER] != 0)
            break;
        Py_ssize_t cut = plen - 1;
        while (p[cut] != '/')
            cut--;
        if (cut == plen - 1)
            break;  /* a path ending in "/": the Python code places it */
        PyObject *key = PyLong_FromLongLong(ref);
        PyObject *acl = key == NULL ? NULL : PyDict_GetItemWithError(acls, key);
        Py_XDECREF(key);
        PyObject *path = acl == NULL ? NULL : PyUnicode_DecodeUTF8(p, plen, NULL);
        if (path == NULL) {
            if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
                return NULL;
            PyErr_Clear();
            break;  /* an unknown ACL ref, invalid UTF-8 */
        }
        PyObject *parent_path = cut == 0 ? PyUnicode_FromStringAndSize("/", 1) : PyUnicode_DecodeUTF8(p, cut, NULL);
        PyObject *parent = parent_path == NULL ? NULL : PyDict_GetItemWithError(nodes, parent_path);
        Py_XDECREF(parent_path);
        int present = parent == NULL ? 0 : PyDict_Contains(nodes, path);
        PyObject *children = parent == NULL ? NULL : SLOT(parent, nv->off[N_CHILDREN]);
        if (parent == NULL || present != 0 || children == NULL || !PyAnySet_Check(children)
                || !PyObject_TypeCheck(parent, nv->node_type)) {
            Py_DECREF(path);
            if (PyErr_Occurred())
                return NULL;
            break;  /* no parent, or a path already present: the Python code answers */
        }
        PyObject *data = PyBytes_FromStringAndSize((const char *)d, dlen);
        PyObject *name = PyUnicode_DecodeUTF8(p + cut + 1, plen - cut - 1, NULL);
        uint32_t digest = data == NULL ? 0 : digest_of(p, plen, data, v);
        PyObject *node = data == NULL || name == NULL ? NULL : nv->node_type->tp_alloc(nv->node_type, 0);
        PyObject *digest_obj = node == NULL ? NULL : PyLong_FromUnsignedLong(digest);
        if (digest_obj == NULL) {
            Py_XDECREF(node);
            goto fail;
        }
        SLOT(node, nv->off[N_DATA]) = data;
        data = NULL;
        SLOT(node, nv->off[N_ACL]) = Py_NewRef(acl);
        static const int ints[] = {N_CZXID, N_MZXID, N_CTIME, N_MTIME, N_VERSION, N_CVERSION, N_AVERSION, N_OWNER, N_PZXID};
        for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
            PyObject *x = PyLong_FromLongLong(v[ints[i]]);
            if (x == NULL) {
                Py_DECREF(digest_obj);
                Py_DECREF(node);
                goto fail;
            }
            SLOT(node, nv->off[ints[i]]) = x;
        }
        SLOT(node, nv->off[N_CHILDREN]) = Py_NewRef(no_children);
        SLOT(node, nv->off[N_DIGEST]) = digest_obj;
        SLOT(node, nv->off[N_REPLY]) = Py_NewRef(Py_None);
        SLOT(node, nv->off[N_CHILDREN_REPLY]) = Py_NewRef(Py_None);
        if (untrack)
            PyObject_GC_UnTrack(node);
        /* the parent gains the child (its replies change), as DataTree._add_child */
        int r;
        if (PySet_GET_SIZE(children) > 0 && PySet_CheckExact(children)) {
            r = PySet_Add(children, name);
        } else {
            PyObject *fresh = PySet_New(NULL);
            r = fresh == NULL || PySet_Add(fresh, name) < 0 ? -1 : 0;
            if (r == 0) {
                Py_SETREF(SLOT(parent, nv->off[N_CHILDREN]), fresh);
            } else {
                Py_XDECREF(fresh);
            }
        }
        if (r == 0) {
            Py_XSETREF(SLOT(parent, nv->off[N_REPLY]), Py_NewRef(Py_None));
            Py_XSETREF(SLOT(parent, nv->off[N_CHILDREN_REPLY]), Py_NewRef(Py_None));
            r = PyDict_SetItem(nodes, path, node);
        }
        Py_DECREF(node);
        Py_DECREF(path);
        Py_DECREF(name);
        if (r < 0)
            return NULL;
        total += digest;
        off = at;
        continue;
fail:
        Py_XDECREF(data);
        Py_XDECREF(name);
        Py_DECREF(path);
        return NULL;
    }
    return Py_BuildValue("(nK)", off, (unsigned long long)total);
}

/* NodeView(node_type, py_digest, py_stat_bytes) */
static PyObject *
nodeview_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *node_type, *py_digest, *py_stat_bytes;
    if (!PyArg_ParseTuple(args, "O!OO:NodeView", &PyType_Type, &node_type, &py_digest, &py_stat_bytes))
        return NULL;
    NodeView *nv = (NodeView *)type->tp_alloc(type, 0);
    if (nv == NULL)
        return NULL;
    nv->node_type = (PyTypeObject *)Py_NewRef(node_type);
    nv->py_digest = Py_NewRef(py_digest);
    nv->py_stat_bytes = Py_NewRef(py_stat_bytes);
    for (int i = 0; i < N_COUNT; i++) {
        PyObject *name = PyUnicode_FromString(node_slots[i]);
        nv->off[i] = name == NULL ? -1 : slot_offset(nv->node_type, name);
        Py_XDECREF(name);
        if (nv->off[i] < 0) {
            Py_DECREF(nv);
            return NULL;
        }
    }
    return (PyObject *)nv;
}

static int
nodeview_traverse(NodeView *nv, visitproc visit, void *arg)
{
    Py_VISIT(nv->node_type);
    Py_VISIT(nv->py_digest);
    Py_VISIT(nv->py_stat_bytes);
    return 0;
}

static int
nodeview_clear(NodeView *nv)
{
    Py_CLEAR(nv->node_type);
    Py_CLEAR(nv->py_digest);
    Py_CLEAR(nv->py_stat_bytes);
    return 0;
}

static void
nodeview_dealloc(NodeView *nv)
{
    PyObject_GC_UnTrack(nv);
    nodeview_clear(nv);
    Py_TYPE(nv)->tp_free((PyObject *)nv);
}

/* acl_refs(nodes, open_acl) -> {id(acl): (acl, ref)}: see core.snapshot._acl_refs, which this
 * is in C. A value that is not a node goes to the Python code as a whole (None is returned). */
static PyObject *
nodeview_acl_refs(NodeView *nv, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyDict_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "acl_refs(nodes, open_acl)");
        return NULL;
    }
    PyObject *refs = PyDict_New(), *key, *node, *last = NULL;
    Py_ssize_t pos = 0;
    while (refs != NULL && PyDict_Next(args[0], &pos, &key, &node)) {
        PyObject *acl = PyObject_TypeCheck(node, nv->node_type) ? SLOT(node, nv->off[N_ACL]) : NULL;
        if (acl == NULL) {
            Py_DECREF(refs);
            Py_RETURN_NONE;
        }
        if (acl == last || acl == args[1])  /* nodes mostly share one ACL: skip the lookup */
            continue;
        last = acl;
        PyObject *id = PyLong_FromVoidPtr(acl), *entry = NULL;
        int known = id == NULL ? -1 : PyDict_Contains(refs, id);
        if (known == 0) {
            PyObject *ref = PyLong_FromSsize_t(PyDict_GET_SIZE(refs) + 1);
            entry = ref == NULL ? NULL : pair_of(Py_NewRef(acl), ref);
            known = entry == NULL || PyDict_SetItem(refs, id, entry) < 0 ? -1 : 1;
        }
        Py_XDECREF(entry);
        Py_XDECREF(id);
        if (known < 0)
            Py_CLEAR(refs);
    }
    return refs;
}

static PyMethodDef nodeview_methods[] = {
    {"acl_refs", (PyCFunction)(void (*)(void))nodeview_acl_refs, METH_FASTCALL,
     "acl_refs(nodes, open_acl) -> {id(acl): (acl, ref)} for the ACLs but open_acl, or None."},
    {"digest", (PyCFunction)(void (*)(void))nodeview_digest, METH_FASTCALL,
     "digest(path, node) -> the node's part of the tree digest."},
    {"stat_bytes", (PyCFunction)nodeview_stat_bytes, METH_O, "stat_bytes(node) -> the client Stat's bytes."},
    {"read_plain_nodes", (PyCFunction)(void (*)(void))nodeview_read_plain_nodes, METH_FASTCALL,
     "read_plain_nodes(data, off, acls, nodes, no_children) -> (offset, digest sum)."},
    {"write_nodes", (PyCFunction)(void (*)(void))nodeview_write_nodes, METH_FASTCALL,
     "write_nodes(nodes, stack, refs, open_acl, upto, limit, py_record) -> snapshot records' bytes."},
    {NULL},
};

static PyTypeObject NodeViewType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "core._native.NodeView",
    .tp_doc = "A core.tree.Node's digest and Stat bytes (see core/native.py).",
    .tp_basicsize = sizeof(NodeView),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = nodeview_new,
    .tp_traverse = (traverseproc)nodeview_traverse,
    .tp_clear = (inquiry)nodeview_clear,
    .tp_dealloc = (destructor)nodeview_dealloc,
    .tp_methods = nodeview_methods,
};

/* -- multi decoder ------------------------------------------------------------------------ */

static PyObject *str_native_codec, *str_path;

/* decode_multi(buf, off, allowed) for core.requests: each (MultiHeader, record) up to the
 * header marked done, as a list of (op, record); None where the Python code gives None (a
 * truncation, an op `allowed` lacks, a record that does not decode or has a null path). The
 * function's `self` is the Python decode_multi, which gets every call this code does not
 * decode alike (a record without a C codec, or one its codec hands to Python). */
static PyObject *
decode_multi(PyObject *py, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t off = nargs == 3 && PyLong_CheckExact(args[1]) ? PyLong_AsSsize_t(args[1]) : -1;
    Py_buffer view;
    if (off < 0 || !PyDict_CheckExact(args[2]) || PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        return PyObject_Vectorcall(py, args, nargs, NULL);
    }
    const unsigned char *buf = view.buf;
    Py_ssize_t size = view.len, at = off;
    PyObject *ops = PyList_New(0), *result = NULL;
    if (ops == NULL)
        goto done;
    for (;;) {
        if (at > size || size - at < 9) {  /* the header does not fit: struct.error */
            result = Py_NewRef(Py_None);
            goto done;
        }
        int32_t op = (int32_t)be32(buf + at);
        int finished = buf[at + 4] != 0;
        at += 9;
        if (finished) {
            result = Py_NewRef(ops);
            goto done;
        }
        PyObject *key = PyLong_FromLong(op);
        if (key == NULL)
            goto done;
        PyObject *cls = PyDict_GetItemWithError(args[2], key);  /* borrowed */
        if (cls == NULL) {
            Py_DECREF(key);
            if (!PyErr_Occurred())
                result = Py_NewRef(Py_None);
            goto done;
        }
        PyObject *codec = PyObject_GetAttr(cls, str_native_codec);
        if (codec == NULL || !Py_IS_TYPE(codec, &CodecType)) {
            Py_DECREF(key);
            Py_XDECREF(codec);
            PyErr_Clear();
            goto fallback;
        }
        int status = 0;
        PyObject *rec = codec_decode_at((Codec *)codec, (Codec *)codec, buf, size, &at, &status);
        PyObject *error = ((Codec *)codec)->error;
        Py_DECREF(codec);
        if (rec == NULL) {
            Py_DECREF(key);
            if (status == D_FALLBACK)
                goto fallback;
            if (PyErr_ExceptionMatches(error)) {  /* JuteError: MARSHALLINGERROR */
                PyErr_Clear();
                result = Py_NewRef(Py_None);
            }
            goto done;
        }
        PyObject *path = PyObject_GetAttr(rec, str_path);
        if (path == NULL && PyErr_ExceptionMatches(PyExc_AttributeError))
            PyErr_Clear();  /* no path: as getattr(rec, "path", "") */
        else if (path == NULL || path == Py_None) {
            Py_XDECREF(path);
            Py_DECREF(key);
            Py_DECREF(rec);
            if (!PyErr_Occurred())
                result = Py_NewRef(Py_None);
            goto done;
        }
        Py_XDECREF(path);
        PyObject *pair = pair_of(key, rec);
        if (pair == NULL)
            goto done;
        int r = PyList_Append(ops, pair);
        Py_DECREF(pair);
        if (r < 0)
            goto done;
    }
fallback:
    PyBuffer_Release(&view);
    Py_XDECREF(ops);
    return PyObject_Vectorcall(py, args, nargs, NULL);
done:
    PyBuffer_Release(&view);
    Py_XDECREF(ops);
    return result;
}

static PyMethodDef decode_multi_def = {"decode_multi", (PyCFunction)(void (*)(void))decode_multi, METH_FASTCALL,
                                       "decode_multi(buf, off, allowed) -> [(op, record)] or None."};

/* multi_decoder(py_decode_multi) -> decode_multi */
static PyObject *
multi_decoder(PyObject *module, PyObject *py)
{
    return PyCFunction_NewEx(&decode_multi_def, py, NULL);
}

/* -- txn encoder -------------------------------------------------------------------------- */

/* encode_txn(txn) for core.txn: TxnHeader (clientId q, cxid i, zxid q, time q, type i), the
 * body by its type's Codec (a multi: the count, then each sub-txn's type, length and body),
 * then the TxnDigest if any. The function's `self` is the tuple made by txn_encoder: (Txn
 * class, slot offsets as bytes, {type: Codec}, the TxnDigest Codec, the multi type, the Python
 * encode_txn), which gets every txn this code does not encode exactly as it would. */
enum { TE_CLS, TE_OFFSETS, TE_BODIES, TE_DIGEST, TE_MULTI, TE_PY, TE_COUNT };
enum { TX_CLIENT, TX_CXID, TX_ZXID, TX_TIME, TX_TYPE, TX_BODY, TX_DIGEST, TX_COUNT };
static const char *txn_slots[TX_COUNT] = {"clientId", "cxid", "zxid", "time", "type", "body", "digest"};

/* 1 encoded, 0 for the Python code, -1 error. */
static int
encode_txn_to(PyObject *spec, PyObject *txn, Out *o)
{
    if (!Py_IS_TYPE(txn, (PyTypeObject *)PyTuple_GET_ITEM(spec, TE_CLS)))
        return 0;
    const Py_ssize_t *off = (const Py_ssize_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(spec, TE_OFFSETS));
    PyObject *bodies = PyTuple_GET_ITEM(spec, TE_BODIES);
    int64_t h[5];
    static const int64_t lo[5] = {INT64_MIN, INT32_MIN, INT64_MIN, INT64_MIN, INT32_MIN};
    static const int64_t hi[5] = {INT64_MAX, INT32_MAX, INT64_MAX, INT64_MAX, INT32_MAX};
    for (int i = 0; i < 5; i++) {
        PyObject *v = SLOT(txn, off[i]);
        if (v == NULL || !as_int64(v, lo[i], hi[i], &h[i]))
            return 0;
    }
    unsigned char *p = out_reserve(o, 32);
    if (p == NULL)
        return -1;
    put64(p, (uint64_t)h[TX_CLIENT]);
    put32(p + 8, (uint32_t)h[TX_CXID]);
    put64(p + 12, (uint64_t)h[TX_ZXID]);
    put64(p + 20, (uint64_t)h[TX_TIME]);
    put32(p + 28, (uint32_t)h[TX_TYPE]);
    PyObject *body = SLOT(txn, off[TX_BODY]), *digest = SLOT(txn, off[TX_DIGEST]);
    if (body == NULL || digest == NULL)
        return 0;
    if (h[TX_TYPE] == PyLong_AsLong(PyTuple_GET_ITEM(spec, TE_MULTI))) {
        if (!PyList_CheckExact(body) || PyList_GET_SIZE(body) > INT32_MAX)
            return 0;
        Py_ssize_t n = PyList_GET_SIZE(body);
        if ((p = out_reserve(o, 4)) == NULL)
            return -1;
        put32(p, (uint32_t)n);
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *sub = PyList_GET_ITEM(body, i);
            if (!PyTuple_CheckExact(sub) || PyTuple_GET_SIZE(sub) != 2)
                return 0;
            int64_t st;
            if (!as_int64(PyTuple_GET_ITEM(sub, 0), INT32_MIN, INT32_MAX, &st))
                return 0;
            PyObject *codec = PyDict_GetItemWithError(bodies, PyTuple_GET_ITEM(sub, 0));
            if (codec == NULL)
                return PyErr_Occurred() ? -1 : 0;
            if (out_reserve(o, 8) == NULL)
                return -1;
            Py_ssize_t at = o->len - 8;
            int r = codec_encode_to((Codec *)codec, PyTuple_GET_ITEM(sub, 1), o);
            if (r != 1)
                return r;
            put32(o->p + at, (uint32_t)st);
            put32(o->p + at + 4, (uint32_t)(o->len - at - 8));
        }
    } else if (body != Py_None) {
        PyObject *codec = PyDict_GetItemWithError(bodies, SLOT(txn, off[TX_TYPE]));
        if (codec == NULL)
            return PyErr_Occurred() ? -1 : 0;
        int r = codec_encode_to((Codec *)codec, body, o);
        if (r != 1)
            return r;
    }
    if (digest != Py_None)
        return codec_encode_to((Codec *)PyTuple_GET_ITEM(spec, TE_DIGEST), digest, o);
    return 1;
}

static PyObject *
encode_txn(PyObject *spec, PyObject *txn)
{
    int r;
    PyObject *b = encoded_bytes(encode_txn_to, spec, txn, &r);
    if (r == 0)
        return PyObject_CallOneArg(PyTuple_GET_ITEM(spec, TE_PY), txn);
    return b;
}

static PyMethodDef encode_txn_def = {"encode_txn", encode_txn, METH_O, "encode_txn(txn) -> a log entry's bytes."};

/* txn_encoder(Txn, bodies, digest_codec, multi_type, py_encode_txn) -> encode_txn */
static PyObject *
txn_encoder(PyObject *module, PyObject *args)
{
    PyObject *cls, *bodies, *digest, *multi, *py;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O:txn_encoder", &PyType_Type, &cls, &PyDict_Type, &bodies,
                          &CodecType, &digest, &PyLong_Type, &multi, &py))
        return NULL;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(bodies, &pos, &k, &v)) {
        if (!PyLong_CheckExact(k) || !Py_IS_TYPE(v, &CodecType)) {
            PyErr_SetString(PyExc_TypeError, "bodies: {int: Codec}");
            return NULL;
        }
    }
    PyObject *offsets = slot_offsets(cls, txn_slots, TX_COUNT);
    if (offsets == NULL)
        return NULL;
    return function_of(&encode_txn_def, Py_BuildValue("(ONOOOO)", cls, offsets, bodies, digest, multi, py));
}

/* -- classes read by their slots ---------------------------------------------------------- */

/* The attributes of a class that these functions read (and write) by their slots' offsets: the
 * class, and the offsets of the slots named in a layout's list, as made by `layout`. An object
 * of another class (a subclass too), or whose slot is unset, is read by name as Python would. */
typedef struct {
    PyTypeObject *type;
    const Py_ssize_t *off;
    const char *const *names;
} Layout;

/* (cls, its slots' offsets) for a spec; NULL with an exception. */
static PyObject *
layout(PyObject *cls, const char *const *names, int count)
{
    PyObject *off = slot_offsets(cls, (const char **)names, count);
    return off == NULL ? NULL : Py_BuildValue("(ON)", cls, off);
}

static Layout
layout_at(PyObject *spec, int i, const char *const *names)
{
    PyObject *pair = PyTuple_GET_ITEM(spec, i);
    Layout l = {(PyTypeObject *)PyTuple_GET_ITEM(pair, 0),
                (const Py_ssize_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(pair, 1)), names};
    return l;
}

/* `obj`'s attribute `i` of `l`, a new reference; NULL with Python's exception. */
static PyObject *
field(PyObject *obj, const Layout *l, int i)
{
    if (Py_IS_TYPE(obj, l->type)) {
        PyObject *v = SLOT(obj, l->off[i]);
        if (v != NULL)
            return Py_NewRef(v);
    }
    return PyObject_GetAttrString(obj, l->names[i]);
}

/* Set `obj`'s attribute `i` of `l` to `v`; -1 with Python's exception. */
static int
set_field(PyObject *obj, const Layout *l, int i, PyObject *v)
{
    if (Py_IS_TYPE(obj, l->type)) {
        Py_XSETREF(SLOT(obj, l->off[i]), Py_NewRef(v));
        return 0;
    }
    return PyObject_SetAttrString(obj, l->names[i], v);
}

enum { TF_OPS, TF_LAST_ZXID, TF_NODES, TF_DIGEST, TF_LISTENER, TF_COUNT };
static const char *const tree_fields[TF_COUNT] = {"_ops", "last_zxid", "nodes", "_digest", "listener"};
enum { PF_HANDLERS, PF_SESSIONS, PF_NOW_MS, PF_ORDER, PF_PENDING, PF_UNDO, PF_TREE, PF_COUNT };
static const char *const prep_fields[PF_COUNT] = {"_handlers", "sessions", "now_ms", "_order", "_pending", "_undo",
                                                  "tree"};

/* -- setData prep ------------------------------------------------------------------------ */

/* set_data(prep, t, rec, request, zxid) for core.prep's Prep._set_data, in its common case: a
 * path of the tree or of a pending change that exists, an ACL that lets world:anyone write, a
 * version that matches (or -1) and is an int, plain types throughout. It makes the same change
 * record and SetDataTxn and records them as `Prep._add` does. Every other call goes to the
 * Python method before anything is changed, so its errors and results are the Python code's.
 * The function's `self` is the tuple made by set_data_prepper. */
enum { SD_VIEW, SD_CHANGE, SD_CHANGE_OFFSETS, SD_REQUEST, SD_REQUEST_OFFSETS, SD_TXN, SD_PY, SD_PERM,
       SD_OPEN, SD_PREP, SD_TREE, SD_COUNT };
enum { R_PATH, R_DATA, R_VERSION, R_COUNT };
static const char *request_slots[R_COUNT] = {"path", "data", "version"};
enum { C_EXISTS, C_VERSION, C_CVERSION, C_AVERSION, C_OWNER, C_ACL, C_NCHILDREN, C_COUNT };
static const char *change_slots[C_COUNT] = {"exists", "version", "cversion", "aversion",
                                            "ephemeral_owner", "acl", "nchildren"};
static PyObject *str_perms, *str_id, *str_scheme, *str_append;

/* An attribute of `obj`, or NULL without an exception when it has none. */
static PyObject *
attr_or_null(PyObject *obj, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        PyErr_Clear();
    return v;
}

/* Whether an exact str equals the ASCII text `s`. */
static int
str_is(PyObject *v, const char *s)
{
    return v != NULL && PyUnicode_CheckExact(v) && PyUnicode_CompareWithASCIIString(v, s) == 0;
}

/* The perms world:anyone holds in `acl` (a tuple of ACL records): every perm when it is empty
 * (AccessControl.allowed's first steps); -1 when that is not certain. `*only_world` tells
 * whether every entry names world:anyone. */
static int64_t
world_perms(PyObject *acl, int *only_world)
{
    *only_world = 0;
    if (!PyTuple_CheckExact(acl))
        return -1;
    *only_world = 1;
    if (PyTuple_GET_SIZE(acl) == 0)
        return INT32_MAX;
    int64_t mask = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(acl); i++) {
        PyObject *entry = PyTuple_GET_ITEM(acl, i);
        PyObject *perms = attr_or_null(entry, str_perms), *id = attr_or_null(entry, str_id);
        PyObject *scheme = id == NULL ? NULL : attr_or_null(id, str_scheme);
        PyObject *name = id == NULL ? NULL : attr_or_null(id, str_id);
        int64_t p = 0;
        int ok = perms != NULL && as_int64(perms, INT32_MIN, INT32_MAX, &p) && scheme != NULL && name != NULL;
        if (ok && str_is(scheme, "world") && str_is(name, "anyone"))
            mask |= p;
        else
            *only_world = 0;
        Py_XDECREF(perms);
        Py_XDECREF(id);
        Py_XDECREF(scheme);
        Py_XDECREF(name);
        if (!ok)
            return -1;
    }
    return mask;
}

/* 1 when world:anyone holds `perm` in `acl`, 0 when not certain. `cache` is a list of the
 * last ACL looked at and its world_perms (nodes share equal ACLs: it is mostly that one). */
static int
world_allows(PyObject *cache, PyObject *acl, int64_t perm)
{
    if (PyList_GET_ITEM(cache, 0) != acl) {
        int only_world;
        int64_t mask = world_perms(acl, &only_world);
        PyObject *m = PyLong_FromLongLong(mask);
        if (m == NULL) {
            PyErr_Clear();
            return 0;
        }
        PyList_SetItem(cache, 1, m);
        PyList_SetItem(cache, 0, Py_NewRef(acl));
    }
    long mask = PyLong_AsLong(PyList_GET_ITEM(cache, 1));
    return mask > 0 && (mask & perm) != 0;
}

/* The next version as _next_version gives it for an expected one that matched. */
static int64_t
next_version(int64_t current)
{
    int64_t n = current == INT32_MAX ? INT32_MIN : current + 1;
    return n == -1 ? 0 : n;
}

/* The parts of a Prep that the prep functions read and change (new references): its pending
 * change records by path, its undo list (None outside a multi), its change records in order and
 * its tree's nodes. */
typedef struct {
    PyObject *pending, *undo, *order, *nodes;
} PrepParts;

static void
prep_parts_clear(PrepParts *p)
{
    Py_CLEAR(p->pending);
    Py_CLEAR(p->undo);
    Py_CLEAR(p->order);
    Py_CLEAR(p->nodes);
}

/* 1 with `p` filled from `prep`, read by the layouts of a Prep and of a DataTree at `spec[i]`
 * and `spec[i + 1]`; 0 (no exception, nothing held) when a part is missing or of another type. */
static int
prep_parts(PyObject *prep, PyObject *spec, int i, PrepParts *p)
{
    Layout pr = layout_at(spec, i, prep_fields), tr = layout_at(spec, i + 1, tree_fields);
    PyObject *tree = field(prep, &pr, PF_TREE);
    p->nodes = tree == NULL ? NULL : field(tree, &tr, TF_NODES);
    Py_XDECREF(tree);
    p->pending = field(prep, &pr, PF_PENDING);
    p->undo = field(prep, &pr, PF_UNDO);
    p->order = field(prep, &pr, PF_ORDER);
    if (p->pending != NULL && PyDict_CheckExact(p->pending) && p->undo != NULL
            && (p->undo == Py_None || PyList_CheckExact(p->undo)) && p->order != NULL && p->nodes != NULL
            && PyDict_CheckExact(p->nodes))
        return 1;
    PyErr_Clear();
    prep_parts_clear(p);
    return 0;
}

/* The record of `path` as pending changes leave it: a new reference to the change (exists) or
 * the node, or None when it will not exist; NULL with an exception, or NULL without one when
 * the Python code must decide (an unexpected type). `*prev` is the pending change (borrowed)
 * or NULL. */
static PyObject *
pending_record(PrepParts *p, PyObject *path, PyObject *change_type, const Py_ssize_t *coff, PyObject **prev)
{
    *prev = PyDict_GetItemWithError(p->pending, path);
    if (*prev != NULL) {
        if (!Py_IS_TYPE(*prev, (PyTypeObject *)change_type))
            return NULL;
        PyObject *exists = SLOT(*prev, coff[C_EXISTS]);
        return exists == Py_True ? Py_NewRef(*prev) : exists == Py_False ? Py_NewRef(Py_None) : NULL;
    }
    if (PyErr_Occurred())
        return NULL;
    PyObject *node = PyDict_GetItemWithError(p->nodes, path);
    if (node == NULL)
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    return Py_NewRef(node);
}

/* A record's version, cversion, aversion, owner, acl and nchildren (new references in `out`,
 * C_VERSION.. C_NCHILDREN), from a change record or a node; 0 when a slot is missing. */
static int
record_slots(NodeView *nv, PyObject *rec, PyObject *change_type, const Py_ssize_t *coff, PyObject **out)
{
    for (int i = C_VERSION; i <= C_NCHILDREN; i++)
        out[i] = NULL;
    if (Py_IS_TYPE(rec, (PyTypeObject *)change_type)) {
        for (int i = C_VERSION; i <= C_NCHILDREN; i++)
            if ((out[i] = Py_XNewRef(SLOT(rec, coff[i]))) == NULL)
                return 0;
        return 1;
    }
    if (!PyObject_TypeCheck(rec, nv->node_type))
        return 0;
    static const int from[] = {N_VERSION, N_CVERSION, N_AVERSION, N_OWNER, N_ACL};
    for (int i = C_VERSION; i < C_NCHILDREN; i++)
        if ((out[i] = Py_XNewRef(SLOT(rec, nv->off[from[i - C_VERSION]]))) == NULL)
            return 0;
    PyObject *children = SLOT(rec, nv->off[N_CHILDREN]);
    if (children == NULL || !PyAnySet_Check(children))
        return 0;
    return (out[C_NCHILDREN] = PyLong_FromSsize_t(PySet_GET_SIZE(children))) != NULL;
}

/* Prep._add of `change` for `path`, whose pending change was `prev` (or NULL). */
static int
add_change(PrepParts *p, PyObject *path, PyObject *prev, PyObject *change)
{
    Py_XINCREF(prev);  /* replaced in `pending` below */
    int r = 0;
    if (p->undo != Py_None) {  /* what to restore if the multi fails */
        PyObject *was = pair_of(Py_NewRef(path), Py_NewRef(prev != NULL ? prev : Py_None));
        r = was == NULL ? -1 : PyList_Append(p->undo, was);
        Py_XDECREF(was);
    }
    Py_XDECREF(prev);
    if (r < 0 || PyDict_SetItem(p->pending, path, change) < 0)
        return -1;
    PyObject *done = PyObject_CallMethodOneArg(p->order, str_append, change);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

static PyObject *
prep_set_data(PyObject *spec, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *py = PyTuple_GET_ITEM(spec, SD_PY);
    if (nargs != 5 || !Py_IS_TYPE(args[2], (PyTypeObject *)PyTuple_GET_ITEM(spec, SD_REQUEST)))
        return PyObject_Vectorcall(py, args, nargs, NULL);
    NodeView *nv = (NodeView *)PyTuple_GET_ITEM(spec, SD_VIEW);
    PyObject *change_type = PyTuple_GET_ITEM(spec, SD_CHANGE);
    const Py_ssize_t *coff = (const Py_ssize_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(spec, SD_CHANGE_OFFSETS));
    const Py_ssize_t *roff = (const Py_ssize_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(spec, SD_REQUEST_OFFSETS));
    PyObject *prep = args[0], *rec = args[2], *zxid = args[4];
    PyObject *path = SLOT(rec, roff[R_PATH]), *data = SLOT(rec, roff[R_DATA]);  /* borrowed */
    PyObject *expected = SLOT(rec, roff[R_VERSION]);
    PrepParts pp = {NULL, NULL, NULL, NULL};
    PyObject *node = NULL, *next = NULL, *change = NULL, *txn = NULL, *result = NULL;
    PyObject *ns[C_COUNT] = {NULL};
    int64_t current, wanted;
    if (path == NULL || !PyUnicode_CheckExact(path) || PyUnicode_GET_LENGTH(path) == 0 || data == NULL
            || expected == NULL || !prep_parts(prep, spec, SD_PREP, &pp))
        goto python;
    PyObject *prev;
    node = pending_record(&pp, path, change_type, coff, &prev);
    if (node == NULL || node == Py_None || !record_slots(nv, node, change_type, coff, ns)
            || !as_int64(ns[C_VERSION], INT32_MIN, INT32_MAX, &current)
            || !as_int64(expected, INT32_MIN, INT32_MAX, &wanted) || (wanted != -1 && wanted != current)
            || !world_allows(PyTuple_GET_ITEM(spec, SD_OPEN), ns[C_ACL], PyLong_AsLong(PyTuple_GET_ITEM(spec, SD_PERM))))
        goto python;  /* NONODE, BADVERSION, NOAUTH, or for the Python code */
    if ((next = PyLong_FromLongLong(next_version(current))) == NULL)
        goto done;
    PyObject *fields[9] = {zxid, path, Py_True, next, ns[C_CVERSION], ns[C_AVERSION], ns[C_OWNER], ns[C_ACL],
                           ns[C_NCHILDREN]};
    PyObject *txn_fields[3] = {path, data, next};
    if ((change = PyObject_Vectorcall(change_type, fields, 9, NULL)) == NULL
            || (txn = PyObject_Vectorcall(PyTuple_GET_ITEM(spec, SD_TXN), txn_fields, 3, NULL)) == NULL
            || add_change(&pp, path, prev, change) < 0)
        goto done;
    result = Py_NewRef(txn);
    goto done;
python:
    PyErr_Clear();
    result = PyObject_Vectorcall(py, args, nargs, NULL);
done:
    for (int i = 0; i < C_COUNT; i++)
        Py_XDECREF(ns[i]);
    prep_parts_clear(&pp);
    Py_XDECREF(node);
    Py_XDECREF(next);
    Py_XDECREF(change);
    Py_XDECREF(txn);
    return result;
}

static PyMethodDef prep_set_data_def = {"set_data", (PyCFunction)(void (*)(void))prep_set_data, METH_FASTCALL,
                                        "set_data(prep, t, rec, request, zxid) -> SetDataTxn."};

/* set_data_prepper(node_view, Change, SetDataRequest, SetDataTxn, py_set_data, perm_write, Prep, DataTree)
 * -> set_data */
static PyObject *
set_data_prepper(PyObject *module, PyObject *args)
{
    PyObject *view, *change, *request, *txn, *py, *perm, *prep_cls, *tree_cls;
    if (!PyArg_ParseTuple(args, "O!O!O!O!OO!O!O!:set_data_prepper", &NodeViewType, &view, &PyType_Type, &change,
                          &PyType_Type, &request, &PyType_Type, &txn, &py, &PyLong_Type, &perm, &PyType_Type,
                          &prep_cls, &PyType_Type, &tree_cls))
        return NULL;
    PyObject *change_offsets = slot_offsets(change, change_slots, C_COUNT);
    PyObject *request_offsets = change_offsets == NULL ? NULL : slot_offsets(request, request_slots, R_COUNT);
    if (request_offsets == NULL) {
        Py_XDECREF(change_offsets);
        return NULL;
    }
    return function_of(&prep_set_data_def, Py_BuildValue(
        "(OONONOOO[Oi]NN)", view, change, change_offsets, request, request_offsets, txn, py, perm, Py_None, -1,
        layout(prep_cls, prep_fields, PF_COUNT), layout(tree_cls, tree_fields, TF_COUNT)));
}

static PyObject *str_access, *str_fixup, *str_auth, *str_session_id, *str_root, *str_zookeeper, *zero, *one;
static PyObject *str_triggered;

/* The parts of a DataTree that the apply functions use (new references): its nodes, its
 * digest and its listener; and the layout they were read by. */
typedef struct {
    PyObject *nodes, *total, *listener;
    Layout l;
} TreeParts;

static void
tree_parts_clear(TreeParts *t)
{
    Py_CLEAR(t->nodes);
    Py_CLEAR(t->total);
    Py_CLEAR(t->listener);
}

/* 1 with `t` filled from `tree`, read by the DataTree layout at `spec[i]`; 0 (no exception,
 * nothing held) when a part is missing or the nodes are not a dict or the digest not an int. */
static int
tree_parts(PyObject *tree, PyObject *spec, int i, TreeParts *t)
{
    t->l = layout_at(spec, i, tree_fields);
    t->nodes = field(tree, &t->l, TF_NODES);
    t->total = field(tree, &t->l, TF_DIGEST);
    t->listener = field(tree, &t->l, TF_LISTENER);
    if (t->nodes != NULL && PyDict_CheckExact(t->nodes) && t->total != NULL && PyLong_CheckExact(t->total)
            && t->listener != NULL)
        return 1;
    PyErr_Clear();
    tree_parts_clear(t);
    return 0;
}

/* core.paths.parent_of for a path whose last "/" is at `cut` (>= 0): a new reference. */
static PyObject *
parent_path_of(PyObject *path, Py_ssize_t cut)
{
    return cut > 0 ? PyUnicode_Substring(path, 0, cut) : Py_NewRef(str_root);
}

/* -- paths and ACLs ------------------------------------------------------------------------ */

/* Whether `path` (an exact str) is a valid znode path as core.paths.validate_path checks it:
 * "/" alone, or "/"-led segments, none empty, "." or "..", of no refused character (U+0000-001F,
 * U+007F-009F, U+D800-F8FF, U+FFF0 and up: PathUtils' per UTF-16 unit). */
static int
path_is_valid(PyObject *path)
{
    Py_ssize_t len = PyUnicode_GET_LENGTH(path);
    int kind = PyUnicode_KIND(path);
    const void *d = PyUnicode_DATA(path);
    if (len == 0 || PyUnicode_READ(kind, d, 0) != '/')
        return 0;
    if (len == 1)
        return 1;
    Py_ssize_t start = 1;  /* the current segment's first character */
    for (Py_ssize_t i = 1; i <= len; i++) {
        Py_UCS4 c = i < len ? PyUnicode_READ(kind, d, i) : '/';
        if (c == '/') {
            Py_ssize_t n = i - start;
            if (n == 0 || (n <= 2 && PyUnicode_READ(kind, d, start) == '.'
                           && (n == 1 || PyUnicode_READ(kind, d, start + 1) == '.')))
                return 0;
            start = i + 1;
        } else if (c <= 0x1f || (c >= 0x7f && c <= 0x9f) || (c >= 0xd800 && c <= 0xf8ff) || c >= 0xfff0) {
            return 0;
        }
    }
    return 1;
}

static PyObject *
valid_path(PyObject *module, PyObject *path)
{
    if (!PyUnicode_Check(path))
        return PyErr_Format(PyExc_TypeError, "valid_path(path): a str");
    return PyBool_FromLong(path_is_valid(path));
}

/* Whether `acl` (a tuple of ACL records) names world:anyone in every entry; 0 when that is not
 * certain. Such an ACL fixes up the same on every server and connection. */
static int
only_world(PyObject *acl)
{
    int all;
    return world_perms(acl, &all) >= 0 && all;
}

/* -- create prep -------------------------------------------------------------------------- */

/* create(prep, t, rec, request, zxid) for core.prep's Prep._create, in its common case: a plain
 * create or create2 (persistent or ephemeral, sequential or not) under a node of the tree or of
 * a pending change that exists, has no ephemeral owner and lets world:anyone create children,
 * of a path that is not taken. The ACL is fixed up by AccessControl.fixup, but for the last
 * world:anyone list that fixed up to itself (an interned one, fixed up alike for every server
 * and connection), which is taken as it is; the path is validated as validate_path does; the
 * change records and the CreateTxn are the Python method's. Every other call, and any error,
 * goes to the Python method before anything is recorded. The function's `self` is the tuple
 * made by create_prepper. */
enum { CP_VIEW, CP_CHANGE, CP_CHANGE_OFFSETS, CP_REQUEST, CP_REQUEST_OFFSETS, CP_TXN, CP_PY, CP_PERM, CP_OPEN,
       CP_TYPES, CP_FIXED, CP_PREP, CP_TREE, CP_COUNT };
enum { Q_PATH, Q_DATA, Q_ACL, Q_FLAGS, Q_COUNT };
static const char *create_request_slots[Q_COUNT] = {"path", "data", "acl", "flags"};

static PyObject *
prep_create(PyObject *spec, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *py = PyTuple_GET_ITEM(spec, CP_PY);
    if (nargs != 5 || !Py_IS_TYPE(args[2], (PyTypeObject *)PyTuple_GET_ITEM(spec, CP_REQUEST))
            || PySequence_Contains(PyTuple_GET_ITEM(spec, CP_TYPES), args[1]) != 1) {
        PyErr_Clear();
        return PyObject_Vectorcall(py, args, nargs, NULL);
    }
    NodeView *nv = (NodeView *)PyTuple_GET_ITEM(spec, CP_VIEW);
    PyObject *change_type = PyTuple_GET_ITEM(spec, CP_CHANGE);
    const Py_ssize_t *coff = (const Py_ssize_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(spec, CP_CHANGE_OFFSETS));
    const Py_ssize_t *qoff = (const Py_ssize_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(spec, CP_REQUEST_OFFSETS));
    PyObject *prep = args[0], *rec = args[2], *request = args[3], *zxid = args[4];
    PyObject *path = SLOT(rec, qoff[Q_PATH]), *data = SLOT(rec, qoff[Q_DATA]);  /* borrowed */
    PyObject *acl_in = SLOT(rec, qoff[Q_ACL]), *flags_o = SLOT(rec, qoff[Q_FLAGS]);
    PrepParts pp = {NULL, NULL, NULL, NULL};
    PyObject *access = NULL, *auth = NULL, *acl = NULL, *parent_path = NULL;
    PyObject *parent = NULL, *name = NULL, *taken = NULL;
    PyObject *owner = NULL, *cversion = NULL, *nchildren = NULL, *txn = NULL, *up = NULL, *down = NULL;
    PyObject *result = NULL, *ps[C_COUNT] = {NULL};
    int64_t flags, cv;
    if (path == NULL || data == NULL || acl_in == NULL || flags_o == NULL || !PyUnicode_CheckExact(path)
            || !as_int64(flags_o, 0, 3, &flags))
        goto python;
    Py_ssize_t len = PyUnicode_GET_LENGTH(path);
    Py_ssize_t cut = len == 0 ? -1 : PyUnicode_FindChar(path, '/', 0, len, -1);
    if (cut < 0 || PyUnicode_FindChar(path, 0, 0, len, 1) != -1)
        goto python;  /* no "/", a NUL, or an error */
    parent_path = parent_path_of(path, cut);
    access = attr_or_null(prep, str_access);
    auth = attr_or_null(request, str_auth);
    if (parent_path == NULL || !prep_parts(prep, spec, CP_PREP, &pp) || access == NULL || auth == NULL)
        goto python;
    PyObject *fixed = PyTuple_GET_ITEM(spec, CP_FIXED);  /* [the last ACL that fixed up to itself] */
    if (acl_in == PyList_GET_ITEM(fixed, 0))
        acl = Py_NewRef(acl_in);
    else if ((acl = PyObject_CallMethodObjArgs(access, str_fixup, acl_in, auth, NULL)) == NULL)
        goto python;  /* INVALIDACL: the Python method raises it */
    else if (acl == acl_in && only_world(acl))  /* an interned list, as every connection fixes it up */
        PyList_SetItem(fixed, 0, Py_NewRef(acl));
    PyObject *parent_prev, *prev;
    parent = pending_record(&pp, parent_path, change_type, coff, &parent_prev);
    if (parent == NULL || parent == Py_None || !record_slots(nv, parent, change_type, coff, ps)
            || !world_allows(PyTuple_GET_ITEM(spec, CP_OPEN), ps[C_ACL], PyLong_AsLong(PyTuple_GET_ITEM(spec, CP_PERM)))
            || !as_int64(ps[C_CVERSION], INT32_MIN, INT32_MAX, &cv) || !PyLong_CheckExact(ps[C_OWNER])
            || PyLong_AsLong(ps[C_OWNER]) != 0 || !PyLong_CheckExact(ps[C_NCHILDREN]))
        goto python;
    if (flags & 2) {  /* sequential: the parent's cversion, as %010d */
        char suffix[16];
        snprintf(suffix, sizeof(suffix), "%010d", (int)cv);
        name = PyUnicode_FromFormat("%U%s", path, suffix);
    } else {
        name = Py_NewRef(path);
    }
    if (name == NULL || !path_is_valid(name))
        goto python;  /* BADARGUMENTS: the Python method raises it */
    taken = pending_record(&pp, name, change_type, coff, &prev);
    if (taken != Py_None)
        goto python;  /* NODEEXISTS, or for the Python code to decide */
    int ephemeral = flags & 1;
    owner = ephemeral ? attr_or_null(request, str_session_id) : Py_NewRef(zero);
    if (owner == NULL)
        goto python;
    nchildren = PyNumber_Add(ps[C_NCHILDREN], one);
    if (nchildren == NULL || (cversion = PyLong_FromLong(cv < INT32_MAX ? (long)cv + 1 : (long)INT32_MIN)) == NULL)
        goto done;
    PyObject *txn_fields[5] = {name, data, acl, ephemeral ? Py_True : Py_False, cversion};
    if ((txn = PyObject_Vectorcall(PyTuple_GET_ITEM(spec, CP_TXN), txn_fields, 5, NULL)) == NULL)
        goto done;
    PyObject *up_fields[9] = {zxid, parent_path, Py_True, ps[C_VERSION], cversion, ps[C_AVERSION], ps[C_OWNER],
                              ps[C_ACL], nchildren};
    PyObject *down_fields[9] = {zxid, name, Py_True, zero, zero, zero, owner, acl, zero};
    if ((up = PyObject_Vectorcall(change_type, up_fields, 9, NULL)) == NULL
            || (down = PyObject_Vectorcall(change_type, down_fields, 9, NULL)) == NULL)
        goto done;
    if (add_change(&pp, parent_path, parent_prev, up) < 0 || add_change(&pp, name, prev, down) < 0)
        goto done;
    result = Py_NewRef(txn);
    goto done;
python:
    PyErr_Clear();
    result = PyObject_Vectorcall(py, args, nargs, NULL);
done:
    for (int i = 0; i < C_COUNT; i++)
        Py_XDECREF(ps[i]);
    prep_parts_clear(&pp);
    Py_XDECREF(access);
    Py_XDECREF(auth);
    Py_XDECREF(acl);
    Py_XDECREF(parent_path);
    Py_XDECREF(parent);
    Py_XDECREF(name);
    Py_XDECREF(taken);
    Py_XDECREF(owner);
    Py_XDECREF(cversion);
    Py_XDECREF(nchildren);
    Py_XDECREF(txn);
    Py_XDECREF(up);
    Py_XDECREF(down);
    return result;
}

static PyMethodDef prep_create_def = {"create", (PyCFunction)(void (*)(void))prep_create, METH_FASTCALL,
                                      "create(prep, t, rec, request, zxid) -> CreateTxn."};

/* create_prepper(node_view, Change, CreateRequest, CreateTxn, py_create, perm_create, types, Prep, DataTree)
 * -> create */
static PyObject *
create_prepper(PyObject *module, PyObject *args)
{
    PyObject *view, *change, *request, *txn, *py, *perm, *types, *prep_cls, *tree_cls;
    if (!PyArg_ParseTuple(args, "O!O!O!O!OO!O!O!O!:create_prepper", &NodeViewType, &view, &PyType_Type, &change,
                          &PyType_Type, &request, &PyType_Type, &txn, &py, &PyLong_Type, &perm,
                          &PyFrozenSet_Type, &types, &PyType_Type, &prep_cls, &PyType_Type, &tree_cls))
        return NULL;
    PyObject *change_offsets = slot_offsets(change, change_slots, C_COUNT);
    PyObject *request_offsets = change_offsets == NULL ? NULL : slot_offsets(request, create_request_slots, Q_COUNT);
    if (request_offsets == NULL) {
        Py_XDECREF(change_offsets);
        return NULL;
    }
    return function_of(&prep_create_def, Py_BuildValue(
        "(OONONOOO[Oi]O[O]NN)", view, change, change_offsets, request, request_offsets, txn, py, perm, Py_None, -1,
        types, Py_None, layout(prep_cls, prep_fields, PF_COUNT), layout(tree_cls, tree_fields, TF_COUNT)));
}

/* -- delete prep -------------------------------------------------------------------------- */

/* delete(prep, t, rec, request, zxid) for core.prep's Prep._delete, in its common case: a path
 * outside /zookeeper whose node (of the tree or of a pending change) exists, has no children
 * and a version that matches (or -1), under a parent that lets world:anyone delete. The change
 * records and the DeleteTxn are the Python method's; every other call goes to the Python method
 * before anything is recorded. The function's `self` is the tuple made by delete_prepper. */
enum { DP_VIEW, DP_CHANGE, DP_CHANGE_OFFSETS, DP_REQUEST, DP_REQUEST_OFFSETS, DP_TXN, DP_PY, DP_PERM, DP_OPEN,
       DP_PREP, DP_TREE, DP_COUNT };
enum { E_PATH, E_VERSION, E_COUNT };
static const char *delete_request_slots[E_COUNT] = {"path", "version"};

static PyObject *
prep_delete(PyObject *spec, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *py = PyTuple_GET_ITEM(spec, DP_PY);
    if (nargs != 5 || !Py_IS_TYPE(args[2], (PyTypeObject *)PyTuple_GET_ITEM(spec, DP_REQUEST)))
        return PyObject_Vectorcall(py, args, nargs, NULL);
    NodeView *nv = (NodeView *)PyTuple_GET_ITEM(spec, DP_VIEW);
    PyObject *change_type = PyTuple_GET_ITEM(spec, DP_CHANGE);
    const Py_ssize_t *coff = (const Py_ssize_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(spec, DP_CHANGE_OFFSETS));
    const Py_ssize_t *eoff = (const Py_ssize_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(spec, DP_REQUEST_OFFSETS));
    PyObject *prep = args[0], *rec = args[2], *zxid = args[4];
    PyObject *path = SLOT(args[2], eoff[E_PATH]), *expected = SLOT(rec, eoff[E_VERSION]);  /* borrowed */
    PrepParts pp = {NULL, NULL, NULL, NULL};
    PyObject *parent_path = NULL, *parent = NULL, *node = NULL;
    PyObject *nchildren = NULL, *txn = NULL, *up = NULL, *gone = NULL;
    PyObject *result = NULL, *ps[C_COUNT] = {NULL}, *ns[C_COUNT] = {NULL};
    int64_t current, wanted, count;
    if (path == NULL || expected == NULL || !PyUnicode_CheckExact(path)
            || PyUnicode_Tailmatch(path, str_zookeeper, 0, PY_SSIZE_T_MAX, -1) != 0)
        goto python;  /* /zookeeper and below (the special paths among them) */
    Py_ssize_t len = PyUnicode_GET_LENGTH(path);
    Py_ssize_t cut = len < 2 ? -1 : PyUnicode_FindChar(path, '/', 0, len, -1);
    if (cut < 0 || PyUnicode_FindChar(path, 0, 0, len, 1) != -1)
        goto python;  /* no "/", the root, a NUL, or an error */
    parent_path = parent_path_of(path, cut);
    if (parent_path == NULL || !prep_parts(prep, spec, DP_PREP, &pp))
        goto python;
    PyObject *parent_prev, *prev;
    parent = pending_record(&pp, parent_path, change_type, coff, &parent_prev);
    if (parent == NULL || parent == Py_None || !record_slots(nv, parent, change_type, coff, ps)
            || !world_allows(PyTuple_GET_ITEM(spec, DP_OPEN), ps[C_ACL], PyLong_AsLong(PyTuple_GET_ITEM(spec, DP_PERM)))
            || !PyLong_CheckExact(ps[C_NCHILDREN]))
        goto python;
    node = pending_record(&pp, path, change_type, coff, &prev);
    if (node == NULL || node == Py_None || !record_slots(nv, node, change_type, coff, ns)
            || !as_int64(ns[C_VERSION], INT32_MIN, INT32_MAX, &current)
            || !as_int64(expected, INT32_MIN, INT32_MAX, &wanted) || (wanted != -1 && wanted != current)
            || !as_int64(ns[C_NCHILDREN], 0, 0, &count))
        goto python;  /* NONODE, BADVERSION, NOTEMPTY, or for the Python code */
    if ((nchildren = PyNumber_Subtract(ps[C_NCHILDREN], one)) == NULL)
        goto done;
    PyObject *txn_fields[1] = {path};
    if ((txn = PyObject_Vectorcall(PyTuple_GET_ITEM(spec, DP_TXN), txn_fields, 1, NULL)) == NULL)
        goto done;
    PyObject *up_fields[9] = {zxid, parent_path, Py_True, ps[C_VERSION], ps[C_CVERSION], ps[C_AVERSION],
                              ps[C_OWNER], ps[C_ACL], nchildren};
    PyObject *empty = PyTuple_New(0);
    PyObject *gone_fields[9] = {zxid, path, Py_False, zero, zero, zero, zero, empty, zero};
    if (empty == NULL || (up = PyObject_Vectorcall(change_type, up_fields, 9, NULL)) == NULL
            || (gone = PyObject_Vectorcall(change_type, gone_fields, 9, NULL)) == NULL) {
        Py_XDECREF(empty);
        goto done;
    }
    Py_DECREF(empty);
    if (add_change(&pp, parent_path, parent_prev, up) < 0 || add_change(&pp, path, prev, gone) < 0)
        goto done;
    result = Py_NewRef(txn);
    goto done;
python:
    PyErr_Clear();
    result = PyObject_Vectorcall(py, args, nargs, NULL);
done:
    for (int i = 0; i < C_COUNT; i++) {
        Py_XDECREF(ps[i]);
        Py_XDECREF(ns[i]);
    }
    prep_parts_clear(&pp);
    Py_XDECREF(parent_path);
    Py_XDECREF(parent);
    Py_XDECREF(node);
    Py_XDECREF(nchildren);
    Py_XDECREF(txn);
    Py_XDECREF(up);
    Py_XDECREF(gone);
    return result;
}

static PyMethodDef prep_delete_def = {"delete", (PyCFunction)(void (*)(void))prep_delete, METH_FASTCALL,
                                      "delete(prep, t, rec, request, zxid) -> DeleteTxn."};

/* delete_prepper(node_view, Change, DeleteRequest, DeleteTxn, py_delete, perm_delete, Prep, DataTree) -> delete */
static PyObject *
delete_prepper(PyObject *module, PyObject *args)
{
    PyObject *view, *change, *request, *txn, *py, *perm, *prep_cls, *tree_cls;
    if (!PyArg_ParseTuple(args, "O!O!O!O!OO!O!O!:delete_prepper", &NodeViewType, &view, &PyType_Type, &change,
                          &PyType_Type, &request, &PyType_Type, &txn, &py, &PyLong_Type, &perm, &PyType_Type,
                          &prep_cls, &PyType_Type, &tree_cls))
        return NULL;
    PyObject *change_offsets = slot_offsets(change, change_slots, C_COUNT);
    PyObject *request_offsets = change_offsets == NULL ? NULL : slot_offsets(request, delete_request_slots, E_COUNT);
    if (request_offsets == NULL) {
        Py_XDECREF(change_offsets);
        return NULL;
    }
    return function_of(&prep_delete_def, Py_BuildValue(
        "(OONONOOO[Oi]NN)", view, change, change_offsets, request, request_offsets, txn, py, perm, Py_None, -1,
        layout(prep_cls, prep_fields, PF_COUNT), layout(tree_cls, tree_fields, TF_COUNT)));
}

/* -- setData apply ----------------------------------------------------------------------- */

/* set_data(tree, t, body, client_id, zxid, time) for core.tree's DataTree._set_data, in its
 * common case: a SetDataTxn of plain values for a node of the tree whose values are plain. It
 * changes the node, its part of the tree digest and the tree's, clears its reply, tells the
 * listener and reports the new Stat, as the Python method does. Every other call goes to the
 * Python method before anything is changed. The function's `self` is the tuple made by
 * set_data_applier. */
enum { SA_VIEW, SA_TXN, SA_TXN_OFFSETS, SA_RESULT, SA_PY, SA_EVENT, SA_TREE, SA_COUNT };

static PyObject *
apply_set_data(PyObject *spec, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *py = PyTuple_GET_ITEM(spec, SA_PY);
    if (nargs != 6 || !Py_IS_TYPE(args[2], (PyTypeObject *)PyTuple_GET_ITEM(spec, SA_TXN)))
        return PyObject_Vectorcall(py, args, nargs, NULL);
    NodeView *nv = (NodeView *)PyTuple_GET_ITEM(spec, SA_VIEW);
    const Py_ssize_t *toff = (const Py_ssize_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(spec, SA_TXN_OFFSETS));
    PyObject *tree = args[0], *t = args[1], *body = args[2], *zxid = args[4], *time = args[5];
    PyObject *path = SLOT(body, toff[R_PATH]), *data = SLOT(body, toff[R_DATA]);  /* borrowed */
    PyObject *version = SLOT(body, toff[R_VERSION]);
    TreeParts tp = {NULL, NULL, NULL, {NULL, NULL, NULL}};
    PyObject *digest = NULL, *delta = NULL, *sum = NULL;
    PyObject *stat = NULL, *result = NULL;
    int64_t v[N_VALUES], version_v, zxid_v, time_v;
    Py_ssize_t plen;
    const char *p = path != NULL && PyUnicode_CheckExact(path) ? PyUnicode_AsUTF8AndSize(path, &plen) : NULL;
    if (p == NULL)
        PyErr_Clear();  /* not UTF-8 (a lone surrogate): the Python method's */
    if (p == NULL || data == NULL || !PyBytes_CheckExact(data) || version == NULL
            || !as_int64(version, INT32_MIN, INT32_MAX, &version_v) || !as_int64(zxid, INT64_MIN, INT64_MAX, &zxid_v)
            || !as_int64(time, INT64_MIN, INT64_MAX, &time_v))
        goto python;
    if (!tree_parts(tree, spec, SA_TREE, &tp))
        goto python;
    PyObject *node = PyDict_GetItemWithError(tp.nodes, path);  /* borrowed; the tree holds it */
    if (node == NULL) {
        if (PyErr_Occurred())
            goto done;
        goto python;
    }
    PyObject *old = Py_IS_TYPE(node, nv->node_type) ? SLOT(node, nv->off[N_DIGEST]) : NULL;
    PyObject *acl = old == NULL ? NULL : SLOT(node, nv->off[N_ACL]);
    if (old == NULL || !PyLong_CheckExact(old) || acl == NULL || !node_values(nv, node, v)
            || PyBytes_GET_SIZE(data) > INT32_MAX || v[N_CHILDREN] > INT32_MAX)
        goto python;
    v[N_DATA] = PyBytes_GET_SIZE(data);
    v[N_MTIME] = time_v;
    v[N_MZXID] = zxid_v;
    v[N_VERSION] = version_v;
    if ((digest = PyLong_FromUnsignedLong(digest_of(p, plen, data, v))) == NULL
            || (delta = PyNumber_Subtract(digest, old)) == NULL || (sum = PyNumber_Add(tp.total, delta)) == NULL
            || set_field(tree, &tp.l, TF_DIGEST, sum) < 0)
        goto done;
    Py_SETREF(SLOT(node, nv->off[N_DATA]), Py_NewRef(data));
    Py_SETREF(SLOT(node, nv->off[N_MTIME]), Py_NewRef(time));
    Py_SETREF(SLOT(node, nv->off[N_MZXID]), Py_NewRef(zxid));
    Py_SETREF(SLOT(node, nv->off[N_VERSION]), Py_NewRef(version));
    Py_SETREF(SLOT(node, nv->off[N_DIGEST]), Py_NewRef(digest));
    Py_XSETREF(SLOT(node, nv->off[N_REPLY]), Py_NewRef(Py_None));
    Py_INCREF(node);  /* the listener may run anything */
    Py_INCREF(acl);
    PyObject *targs[5] = {tp.listener, path, PyTuple_GET_ITEM(spec, SA_EVENT), zxid, acl};
    PyObject *r = PyObject_VectorcallMethod(str_triggered, targs, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r != NULL) {
        Py_DECREF(r);
        if ((stat = stat_of(v)) != NULL) {  /* the listener changes no persisted value */
            PyObject *fields[4] = {t, zero, path, stat};
            result = PyObject_Vectorcall(PyTuple_GET_ITEM(spec, SA_RESULT), fields, 4, NULL);
        }
    }
    Py_DECREF(acl);
    Py_DECREF(node);
    goto done;
python:
    if (!PyErr_Occurred())
        result = PyObject_Vectorcall(py, args, nargs, NULL);
done:
    tree_parts_clear(&tp);
    Py_XDECREF(digest);
    Py_XDECREF(delta);
    Py_XDECREF(sum);
    Py_XDECREF(stat);
    return result;
}

static PyMethodDef apply_set_data_def = {"set_data", (PyCFunction)(void (*)(void))apply_set_data, METH_FASTCALL,
                                         "set_data(tree, t, body, client_id, zxid, time) -> TxnResult."};

/* set_data_applier(node_view, SetDataTxn, TxnResult, py_set_data, event_type, DataTree) -> set_data */
static PyObject *
set_data_applier(PyObject *module, PyObject *args)
{
    PyObject *view, *txn, *result, *py, *event, *tree;
    if (!PyArg_ParseTuple(args, "O!O!O!OO!O!:set_data_applier", &NodeViewType, &view, &PyType_Type, &txn,
                          &PyType_Type, &result, &py, &PyLong_Type, &event, &PyType_Type, &tree))
        return NULL;
    PyObject *offsets = slot_offsets(txn, request_slots, R_COUNT);
    if (offsets == NULL)
        return NULL;
    return function_of(&apply_set_data_def, Py_BuildValue("(OONOOON)", view, txn, offsets, result, py, event,
                                                          layout(tree, tree_fields, TF_COUNT)));
}

/* -- create apply ------------------------------------------------------------------------- */

/* create(tree, t, body, client_id, zxid, time) for core.tree's DataTree._create, in its common
 * case: a create or create2's CreateTxn of plain values for a persistent node at a path not
 * present, under a parent node of plain values. The ACL is interned by the tree's Python method
 * (DataTree.intern_acl; for the ACL object of the create before on the same tree, its result
 * again: interned_acl); the parent's cversion, pzxid and children, both nodes' parts of the tree
 * digest and the tree's, the listener's two triggers and the new Stat are the Python method's.
 * Every other call goes to the Python method before anything is changed. The function's `self`
 * is the tuple made by create_applier. */
enum { CA_VIEW, CA_TXN, CA_TXN_OFFSETS, CA_RESULT, CA_PY, CA_TYPES, CA_CREATED, CA_CHILDREN_CHANGED, CA_TREE,
       CA_INTERNED, CA_COUNT };
enum { K_PATH, K_DATA, K_ACL, K_EPHEMERAL, K_PARENT_CVERSION, K_COUNT };
static const char *create_txn_slots[K_COUNT] = {"path", "data", "acl", "ephemeral", "parentCVersion"};
static PyObject *str_intern_acl;

/* tree.intern_acl(acl) (a new reference; NULL with its exception), but for the ACL object the
 * last call was made with on the same tree: `cache` is [a weak reference to that tree, the ACL,
 * its result]. The tree gives the same object an ACL always the same result. */
static PyObject *
interned_acl(PyObject *cache, PyObject *tree, PyObject *acl)
{
    PyObject *ref = PyList_GET_ITEM(cache, 0);
    if (ref != Py_None && PyWeakref_GetObject(ref) == tree && PyList_GET_ITEM(cache, 1) == acl)
        return Py_NewRef(PyList_GET_ITEM(cache, 2));
    PyObject *found = PyObject_CallMethodOneArg(tree, str_intern_acl, acl);
    if (found == NULL)
        return NULL;
    PyObject *tree_ref = PyWeakref_NewRef(tree, NULL);
    if (tree_ref == NULL) {
        PyErr_Clear();  /* a tree without weak references: not remembered */
        return found;
    }
    PyList_SetItem(cache, 0, tree_ref);
    PyList_SetItem(cache, 1, Py_NewRef(acl));
    PyList_SetItem(cache, 2, Py_NewRef(found));
    return found;
}

static PyObject *
apply_create(PyObject *spec, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *py = PyTuple_GET_ITEM(spec, CA_PY);
    if (nargs != 6 || !Py_IS_TYPE(args[2], (PyTypeObject *)PyTuple_GET_ITEM(spec, CA_TXN))
            || PySequence_Contains(PyTuple_GET_ITEM(spec, CA_TYPES), args[1]) != 1) {
        PyErr_Clear();
        return PyObject_Vectorcall(py, args, nargs, NULL);
    }
    NodeView *nv = (NodeView *)PyTuple_GET_ITEM(spec, CA_VIEW);
    const Py_ssize_t *koff = (const Py_ssize_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(spec, CA_TXN_OFFSETS));
    PyObject *tree = args[0], *t = args[1], *body = args[2], *zxid = args[4], *time = args[5];
    PyObject *path = SLOT(body, koff[K_PATH]), *data = SLOT(body, koff[K_DATA]);  /* borrowed */
    PyObject *acl_in = SLOT(body, koff[K_ACL]), *pcv = SLOT(body, koff[K_PARENT_CVERSION]);
    TreeParts tp = {NULL, NULL, NULL, {NULL, NULL, NULL}};
    PyObject *parent_path = NULL, *parent = NULL, *acl = NULL;
    PyObject *name = NULL, *fresh = NULL, *cversion = NULL, *pdigest = NULL, *node = NULL, *ndigest = NULL;
    PyObject *sum = NULL, *stat = NULL, *result = NULL;
    int64_t pv[N_VALUES], v[N_VALUES], pcv_v, zxid_v, time_v;
    Py_ssize_t plen, pplen;
    const char *p = path != NULL && PyUnicode_CheckExact(path) ? PyUnicode_AsUTF8AndSize(path, &plen) : NULL;
    if (p == NULL || data == NULL || !PyBytes_CheckExact(data) || PyBytes_GET_SIZE(data) > INT32_MAX
            || acl_in == NULL || SLOT(body, koff[K_EPHEMERAL]) != Py_False || pcv == NULL
            || !as_int64(pcv, INT32_MIN, INT32_MAX, &pcv_v) || !as_int64(zxid, INT64_MIN, INT64_MAX, &zxid_v)
            || !as_int64(time, INT64_MIN, INT64_MAX, &time_v))
        goto python;
    Py_ssize_t len = PyUnicode_GET_LENGTH(path);
    Py_ssize_t cut = PyUnicode_FindChar(path, '/', 0, len, -1);
    if (cut < 0 || !tree_parts(tree, spec, CA_TREE, &tp))
        goto python;
    if ((parent_path = parent_path_of(path, cut)) == NULL)
        goto python;
    const char *pp = PyUnicode_AsUTF8AndSize(parent_path, &pplen);
    parent = Py_XNewRef(PyDict_GetItemWithError(tp.nodes, parent_path));
    if (pp == NULL || parent == NULL || !node_values(nv, parent, pv) || pv[N_CHILDREN] >= INT32_MAX)
        goto python;  /* NONODE, or for the Python code */
    PyObject *children = SLOT(parent, nv->off[N_CHILDREN]), *old = SLOT(parent, nv->off[N_DIGEST]);
    PyObject *parent_acl = SLOT(parent, nv->off[N_ACL]);
    if ((PySet_GET_SIZE(children) > 0 && !PySet_CheckExact(children)) || old == NULL || !PyLong_CheckExact(old)
            || parent_acl == NULL)
        goto python;
    int present = PyDict_Contains(tp.nodes, path);
    if (present != 0)
        goto python;  /* NODEEXISTS, or an error for the Python code to meet */
    int64_t cv = pcv_v == -1 ? pv[N_CVERSION] + 1 : pcv_v;
    int raise = cv > pv[N_CVERSION];
    if (raise && cv > INT32_MAX)
        goto python;
    if ((acl = interned_acl(PyTuple_GET_ITEM(spec, CA_INTERNED), tree, acl_in)) == NULL)
        goto done;  /* as the Python method raises it */
    if ((name = PyUnicode_Substring(path, cut + 1, len)) == NULL)
        goto done;
    if (PySet_GET_SIZE(children) == 0 && (fresh = PySet_New(NULL)) == NULL)
        goto done;
    PyObject *fields[11] = {data, acl, zxid, zxid, time, time, zero, zero, zero, zero, zxid};
    if ((node = PyObject_Vectorcall((PyObject *)nv->node_type, fields, 11, NULL)) == NULL || !node_values(nv, node, v))
        goto done;
    if ((ndigest = PyLong_FromUnsignedLong(digest_of(p, plen, data, v))) == NULL
            || (sum = PyNumber_Add(tp.total, ndigest)) == NULL)
        goto done;
    if (raise) {
        pv[N_CVERSION] = cv;
        pv[N_PZXID] = zxid_v;
        PyObject *delta = NULL, *was = sum;
        if ((cversion = PyLong_FromLongLong(cv)) == NULL
                || (pdigest = PyLong_FromUnsignedLong(digest_of(pp, pplen, SLOT(parent, nv->off[N_DATA]), pv))) == NULL
                || (delta = PyNumber_Subtract(pdigest, old)) == NULL || (sum = PyNumber_Add(was, delta)) == NULL) {
            Py_XDECREF(delta);
            sum = was;
            goto done;
        }
        Py_DECREF(delta);
        Py_DECREF(was);
    }
    if ((fresh != NULL ? PySet_Add(fresh, name) : PySet_Add(children, name)) < 0)
        goto done;
    if (PyDict_SetItem(tp.nodes, path, node) < 0) {
        if (fresh == NULL)
            PySet_Discard(children, name);
        goto done;
    }
    if (set_field(tree, &tp.l, TF_DIGEST, sum) < 0) {
        PyDict_DelItem(tp.nodes, path);
        if (fresh == NULL)
            PySet_Discard(children, name);
        goto done;
    }
    /* nothing can fail from here to the triggers */
    if (raise) {
        Py_SETREF(SLOT(parent, nv->off[N_CVERSION]), Py_NewRef(cversion));
        Py_SETREF(SLOT(parent, nv->off[N_PZXID]), Py_NewRef(zxid));
        Py_SETREF(SLOT(parent, nv->off[N_DIGEST]), Py_NewRef(pdigest));
    }
    if (fresh != NULL)
        Py_SETREF(SLOT(parent, nv->off[N_CHILDREN]), Py_NewRef(fresh));
    Py_XSETREF(SLOT(parent, nv->off[N_REPLY]), Py_NewRef(Py_None));
    Py_XSETREF(SLOT(parent, nv->off[N_CHILDREN_REPLY]), Py_NewRef(Py_None));
    Py_XSETREF(SLOT(node, nv->off[N_DIGEST]), Py_NewRef(ndigest));
    Py_INCREF(parent_acl);  /* the listener may run anything */
    PyObject *created[5] = {tp.listener, path, PyTuple_GET_ITEM(spec, CA_CREATED), zxid, acl};
    PyObject *changed[5] = {tp.listener, parent_path, PyTuple_GET_ITEM(spec, CA_CHILDREN_CHANGED), zxid, parent_acl};
    PyObject *r = PyObject_VectorcallMethod(str_triggered, created, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r != NULL) {
        Py_DECREF(r);
        r = PyObject_VectorcallMethod(str_triggered, changed, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    Py_DECREF(parent_acl);
    if (r != NULL) {
        Py_DECREF(r);
        if ((stat = stat_of(v)) != NULL) {  /* the listener changes no persisted value */
            PyObject *res[4] = {t, zero, path, stat};
            result = PyObject_Vectorcall(PyTuple_GET_ITEM(spec, CA_RESULT), res, 4, NULL);
        }
    }
    goto done;
python:
    PyErr_Clear();
    result = PyObject_Vectorcall(py, args, nargs, NULL);
done:
    tree_parts_clear(&tp);
    Py_XDECREF(parent_path);
    Py_XDECREF(parent);
    Py_XDECREF(acl);
    Py_XDECREF(name);
    Py_XDECREF(fresh);
    Py_XDECREF(cversion);
    Py_XDECREF(pdigest);
    Py_XDECREF(node);
    Py_XDECREF(ndigest);
    Py_XDECREF(sum);
    Py_XDECREF(stat);
    return result;
}

static PyMethodDef apply_create_def = {"create", (PyCFunction)(void (*)(void))apply_create, METH_FASTCALL,
                                       "create(tree, t, body, client_id, zxid, time) -> TxnResult."};

/* create_applier(node_view, CreateTxn, TxnResult, py_create, types, created, children_changed, DataTree)
 * -> create */
static PyObject *
create_applier(PyObject *module, PyObject *args)
{
    PyObject *view, *txn, *result, *py, *types, *created, *changed, *tree;
    if (!PyArg_ParseTuple(args, "O!O!O!OO!O!O!O!:create_applier", &NodeViewType, &view, &PyType_Type, &txn,
                          &PyType_Type, &result, &py, &PyFrozenSet_Type, &types, &PyLong_Type, &created,
                          &PyLong_Type, &changed, &PyType_Type, &tree))
        return NULL;
    PyObject *offsets = slot_offsets(txn, create_txn_slots, K_COUNT);
    if (offsets == NULL)
        return NULL;
    return function_of(&apply_create_def,
                       Py_BuildValue("(OONOOOOON[OOO])", view, txn, offsets, result, py, types, created, changed,
                                     layout(tree, tree_fields, TF_COUNT), Py_None, Py_None, Py_None));
}

/* -- delete apply ------------------------------------------------------------------------- */

/* delete(tree, t, body, client_id, zxid, time) for core.tree's DataTree._delete, in its common
 * case: a DeleteTxn of a node without an ephemeral owner, present under a parent present, both
 * of plain values. The parent's pzxid, children and replies, both digests and the tree's, the
 * listener's two triggers and the result are the Python method's; every other call goes to the
 * Python method before anything is changed. The function's `self` is the tuple made by
 * delete_applier. */
enum { DA_VIEW, DA_TXN, DA_PATH_OFFSET, DA_RESULT, DA_PY, DA_NO_CHILDREN, DA_DELETED, DA_CHILDREN_CHANGED,
       DA_TREE, DA_COUNT };

static PyObject *
apply_delete(PyObject *spec, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *py = PyTuple_GET_ITEM(spec, DA_PY);
    if (nargs != 6 || !Py_IS_TYPE(args[2], (PyTypeObject *)PyTuple_GET_ITEM(spec, DA_TXN)))
        return PyObject_Vectorcall(py, args, nargs, NULL);
    NodeView *nv = (NodeView *)PyTuple_GET_ITEM(spec, DA_VIEW);
    Py_ssize_t poff = PyLong_AsSsize_t(PyTuple_GET_ITEM(spec, DA_PATH_OFFSET));
    PyObject *tree = args[0], *t = args[1], *zxid = args[4];
    PyObject *path = SLOT(args[2], poff);  /* borrowed */
    TreeParts tp = {NULL, NULL, NULL, {NULL, NULL, NULL}};
    PyObject *parent_path = NULL, *parent = NULL, *node = NULL;
    PyObject *name = NULL, *pdigest = NULL, *sum = NULL, *result = NULL;
    int64_t pv[N_VALUES], v[N_VALUES], zxid_v;
    Py_ssize_t pplen;
    if (path == NULL || !PyUnicode_CheckExact(path) || !as_int64(zxid, INT64_MIN, INT64_MAX, &zxid_v))
        goto python;
    Py_ssize_t len = PyUnicode_GET_LENGTH(path);
    Py_ssize_t cut = PyUnicode_FindChar(path, '/', 0, len, -1);
    if (cut < 0 || !tree_parts(tree, spec, DA_TREE, &tp))
        goto python;
    if ((parent_path = parent_path_of(path, cut)) == NULL
            || (name = PyUnicode_Substring(path, cut + 1, len)) == NULL)
        goto python;
    const char *pp = PyUnicode_AsUTF8AndSize(parent_path, &pplen);
    parent = Py_XNewRef(PyDict_GetItemWithError(tp.nodes, parent_path));
    node = pp == NULL || parent == NULL ? NULL : Py_XNewRef(PyDict_GetItemWithError(tp.nodes, path));
    if (node == NULL || parent == node || !node_values(nv, parent, pv) || !node_values(nv, node, v)
            || v[N_OWNER] != 0)
        goto python;  /* NONODE, an owner to unindex, or for the Python code */
    PyObject *children = SLOT(parent, nv->off[N_CHILDREN]), *pold = SLOT(parent, nv->off[N_DIGEST]);
    PyObject *nold = SLOT(node, nv->off[N_DIGEST]), *acl = SLOT(node, nv->off[N_ACL]);
    PyObject *parent_acl = SLOT(parent, nv->off[N_ACL]);
    int listed = PySet_Contains(children, name);
    if (listed != 1 || (PySet_GET_SIZE(children) > 1 && !PySet_CheckExact(children)) || pold == NULL
            || !PyLong_CheckExact(pold) || nold == NULL || !PyLong_CheckExact(nold) || acl == NULL || parent_acl == NULL)
        goto python;
    int raise = zxid_v > pv[N_PZXID];
    PyObject *delta = NULL, *less = NULL;
    if (raise) {
        pv[N_PZXID] = zxid_v;
        if ((pdigest = PyLong_FromUnsignedLong(digest_of(pp, pplen, SLOT(parent, nv->off[N_DATA]), pv))) == NULL
                || (delta = PyNumber_Subtract(pdigest, pold)) == NULL)
            goto done;
    }
    less = PyNumber_Subtract(delta != NULL ? delta : zero, nold);
    Py_XDECREF(delta);
    sum = less == NULL ? NULL : PyNumber_Add(tp.total, less);
    Py_XDECREF(less);
    if (sum == NULL || set_field(tree, &tp.l, TF_DIGEST, sum) < 0)
        goto done;
    if (PyDict_DelItem(tp.nodes, path) < 0) {  /* present: it cannot fail but for memory */
        set_field(tree, &tp.l, TF_DIGEST, tp.total);
        goto done;
    }
    /* nothing can fail from here to the triggers */
    if (raise) {
        Py_SETREF(SLOT(parent, nv->off[N_PZXID]), Py_NewRef(zxid));
        Py_SETREF(SLOT(parent, nv->off[N_DIGEST]), Py_NewRef(pdigest));
    }
    Py_XSETREF(SLOT(parent, nv->off[N_REPLY]), Py_NewRef(Py_None));
    Py_XSETREF(SLOT(parent, nv->off[N_CHILDREN_REPLY]), Py_NewRef(Py_None));
    if (PySet_GET_SIZE(children) == 1)
        Py_SETREF(SLOT(parent, nv->off[N_CHILDREN]), Py_NewRef(PyTuple_GET_ITEM(spec, DA_NO_CHILDREN)));
    else
        PySet_Discard(children, name);
    Py_INCREF(acl);  /* the listener may run anything */
    Py_INCREF(parent_acl);
    PyObject *deleted[5] = {tp.listener, path, PyTuple_GET_ITEM(spec, DA_DELETED), zxid, acl};
    PyObject *changed[5] = {tp.listener, parent_path, PyTuple_GET_ITEM(spec, DA_CHILDREN_CHANGED), zxid, parent_acl};
    PyObject *r = PyObject_VectorcallMethod(str_triggered, deleted, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r != NULL) {
        Py_DECREF(r);
        r = PyObject_VectorcallMethod(str_triggered, changed, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    Py_DECREF(acl);
    Py_DECREF(parent_acl);
    if (r != NULL) {
        Py_DECREF(r);
        PyObject *res[3] = {t, zero, path};
        result = PyObject_Vectorcall(PyTuple_GET_ITEM(spec, DA_RESULT), res, 3, NULL);
    }
    goto done;
python:
    PyErr_Clear();
    result = PyObject_Vectorcall(py, args, nargs, NULL);
done:
    tree_parts_clear(&tp);
    Py_XDECREF(parent_path);
    Py_XDECREF(parent);
    Py_XDECREF(node);
    Py_XDECREF(name);
    Py_XDECREF(pdigest);
    Py_XDECREF(sum);
    return result;
}

static PyMethodDef apply_delete_def = {"delete", (PyCFunction)(void (*)(void))apply_delete, METH_FASTCALL,
                                       "delete(tree, t, body, client_id, zxid, time) -> TxnResult."};

/* delete_applier(node_view, DeleteTxn, TxnResult, py_delete, no_children, deleted, children_changed, DataTree)
 * -> delete */
static PyObject *
delete_applier(PyObject *module, PyObject *args)
{
    PyObject *view, *txn, *result, *py, *none, *deleted, *changed, *tree;
    if (!PyArg_ParseTuple(args, "O!O!O!OO!O!O!O!:delete_applier", &NodeViewType, &view, &PyType_Type, &txn,
                          &PyType_Type, &result, &py, &PyFrozenSet_Type, &none, &PyLong_Type, &deleted,
                          &PyLong_Type, &changed, &PyType_Type, &tree))
        return NULL;
    Py_ssize_t off = slot_offset((PyTypeObject *)txn, str_path);
    if (off < 0)
        return NULL;
    return function_of(&apply_delete_def,
                       Py_BuildValue("(OOnOOOOON)", view, txn, off, result, py, none, deleted, changed,
                                     layout(tree, tree_fields, TF_COUNT)));
}

/* -- the write pipeline: a reply's completion, a txn's apply and commit, a request's prep -- */

enum { CN_PENDING, CN_OUT, CN_LATER, CN_SERVER, CN_READ_ONLY, CN_SESSION_ID, CN_AUTH_IDS, CN_RECEIVED_AT,
       CN_REPLIED_NOW, CN_COUNT };
static const char *const conn_fields[CN_COUNT] = {"pending", "out", "replied_later", "server", "read_only",
                                                  "session_id", "auth_ids", "received_at", "replied_now"};
enum { SV_TREE, SV_WAITING, SV_SNAPSHOTTER, SV_DIRTY, SV_CONFIG, SV_STATS, SV_CONSENSUS, SV_COUNT };
static const char *const server_fields[SV_COUNT] = {"tree", "waiting", "snapshotter", "dirty", "config", "stats",
                                                    "consensus"};
enum { SN_LOGGED, SN_THRESHOLD, SN_COUNT };
static const char *const snapshotter_fields[SN_COUNT] = {"logged", "threshold"};
enum { CF_ZXID, CF_PATH, CF_COUNT };
static const char *const change_fields[CF_COUNT] = {"zxid", "path"};
enum { TK_SESSIONS, TK_COUNT };
static const char *const tracker_fields[TK_COUNT] = {"sessions"};
enum { SE_CLOSING, SE_COUNT };
static const char *const session_fields[SE_COUNT] = {"closing"};
/* The slots of a core.connection.OwedWrite read here (its Request's among them). */
enum { W_REPLY, W_T, W_CONN, W_TYPE, W_COUNT };
static const char *const owed_fields[W_COUNT] = {"reply", "t", "conn", "type"};
enum { RQ_TYPE, RQ_SESSION, RQ_CXID, RQ_RECORD, RQ_COUNT };
static const char *const request_fields[RQ_COUNT] = {"type", "session_id", "cxid", "record"};
enum { TR_ERR, TR_PATH, TR_STAT, TR_MULTI, TR_TYPE, TR_COUNT };
static const char *const result_fields[TR_COUNT] = {"err", "path", "stat_bytes", "multi", "type"};

static PyObject *str_popleft, *str_apply, *str_complete, *str_submit, *str_decode, *str_outstanding_limit;

/* complete(conn, write, reply) for core.connection's ServerConnection.complete, for a write that
 * is an OwedWrite (else the Python method): the same steps, in C. */
enum { CO_OWED, CO_CONN, CO_SERVER, CO_PY, CO_COUNT };

static PyObject *
complete(PyObject *spec, PyObject *const *args, Py_ssize_t nargs)
{
    Layout w = layout_at(spec, CO_OWED, owed_fields);
    if (nargs != 3 || !Py_IS_TYPE(args[1], w.type))
        return PyObject_Vectorcall(PyTuple_GET_ITEM(spec, CO_PY), args, nargs, NULL);
    Layout c = layout_at(spec, CO_CONN, conn_fields), s = layout_at(spec, CO_SERVER, server_fields);
    PyObject *conn = args[0], *write = args[1];
    Py_XSETREF(SLOT(write, w.off[W_REPLY]), Py_NewRef(args[2]));
    PyObject *pending = NULL, *head = NULL, *out = NULL, *later = NULL, *server = NULL, *dirty = NULL;
    PyObject *result = NULL;
    Py_ssize_t n;
    if ((pending = field(conn, &c, CN_PENDING)) == NULL || (n = PyObject_Size(pending)) < 0)
        goto done;
    if (n == 0 || (head = PySequence_GetItem(pending, 0)) == NULL || head != write) {
        result = n == 0 || head != NULL ? Py_NewRef(Py_None) : NULL;  /* replies owed before it go first */
        goto done;
    }
    if ((out = field(conn, &c, CN_OUT)) == NULL || (later = field(conn, &c, CN_LATER)) == NULL)
        goto done;
    if (!PyList_Check(out) || !PyList_Check(later)) {
        PyErr_SetString(PyExc_TypeError, "a connection's out and replied_later must be lists");
        goto done;
    }
    while ((n = PyObject_Size(pending)) > 0) {
        Py_XSETREF(head, PySequence_GetItem(pending, 0));
        if (head == NULL)
            goto done;
        PyObject *t, *ready;
        if (PyObject_TypeCheck(head, w.type)) {
            ready = SLOT(head, w.off[W_REPLY]);
            if (ready == NULL || ready == Py_None)
                break;
            t = Py_XNewRef(SLOT(head, w.off[W_T]));
            Py_INCREF(ready);
        } else if (PyTuple_CheckExact(head) && PyTuple_GET_SIZE(head) == 3) {  /* a queued read */
            t = Py_NewRef(PyTuple_GET_ITEM(head, 0));
            ready = PyObject_Call(PyTuple_GET_ITEM(head, 1), PyTuple_GET_ITEM(head, 2), NULL);
        } else {
            PyErr_SetString(PyExc_TypeError, "a connection's pending replies hold writes and queued reads");
            goto done;
        }
        PyObject *popped = ready == NULL || t == NULL ? NULL : PyObject_CallMethodNoArgs(pending, str_popleft);
        int truth = popped == NULL || PyList_Append(out, ready) < 0 ? -1 : PyObject_IsTrue(t);
        if (truth > 0)
            truth = PyList_Append(later, t) < 0 ? -1 : 1;
        Py_XDECREF(popped);
        Py_XDECREF(ready);
        Py_XDECREF(t);
        if (truth < 0)
            goto done;
    }
    if (n < 0 || (server = field(conn, &c, CN_SERVER)) == NULL || (dirty = field(server, &s, SV_DIRTY)) == NULL)
        goto done;
    PyObject *added = PySet_Check(dirty) ? NULL : PyObject_CallMethod(dirty, "add", "O", conn);
    if (PySet_Check(dirty) ? PySet_Add(dirty, conn) < 0 : added == NULL)
        goto done;
    Py_XDECREF(added);
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(pending);
    Py_XDECREF(head);
    Py_XDECREF(out);
    Py_XDECREF(later);
    Py_XDECREF(server);
    Py_XDECREF(dirty);
    return result;
}

static PyMethodDef complete_def = {"complete", (PyCFunction)(void (*)(void))complete, METH_FASTCALL,
                                   "complete(conn, write, reply): fill a write's reply, send what is ready."};

/* completer(OwedWrite, ServerConnection, ZKServer, py_complete) -> complete */
static PyObject *
completer(PyObject *module, PyObject *args)
{
    PyObject *owed, *conn, *server, *py;
    if (!PyArg_ParseTuple(args, "O!O!O!O:completer", &PyType_Type, &owed, &PyType_Type, &conn,
                          &PyType_Type, &server, &py))
        return NULL;
    return function_of(&complete_def, Py_BuildValue("(NNNO)", layout(owed, owed_fields, W_COUNT),
                                                    layout(conn, conn_fields, CN_COUNT),
                                                    layout(server, server_fields, SV_COUNT), py));
}

/* apply(tree, txn) for core.tree's DataTree.apply, for a Txn whose type has an op in the
 * tree's `_ops` (else the Python method, which raises): the op's result; last_zxid raised. */
enum { AP_TXN, AP_OFFSETS, AP_TREE, AP_PY, AP_COUNT };

static PyObject *
tree_apply(PyObject *spec, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *py = PyTuple_GET_ITEM(spec, AP_PY);
    if (nargs != 2 || !Py_IS_TYPE(args[1], (PyTypeObject *)PyTuple_GET_ITEM(spec, AP_TXN)))
        return PyObject_Vectorcall(py, args, nargs, NULL);
    const Py_ssize_t *off = (const Py_ssize_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(spec, AP_OFFSETS));
    Layout l = layout_at(spec, AP_TREE, tree_fields);
    PyObject *tree = args[0], *txn = args[1];
    PyObject *t = SLOT(txn, off[TX_TYPE]), *zxid = SLOT(txn, off[TX_ZXID]);
    PyObject *call[5] = {t, SLOT(txn, off[TX_BODY]), SLOT(txn, off[TX_CLIENT]), zxid, SLOT(txn, off[TX_TIME])};
    for (int i = 0; i < 5; i++)
        if (call[i] == NULL)
            return PyObject_Vectorcall(py, args, nargs, NULL);
    PyObject *ops = field(tree, &l, TF_OPS);
    PyObject *op = ops != NULL && PyDict_CheckExact(ops) ? Py_XNewRef(PyDict_GetItemWithError(ops, t)) : NULL;
    Py_XDECREF(ops);
    if (op == NULL) {
        PyErr_Clear();
        return PyObject_Vectorcall(py, args, nargs, NULL);
    }
    PyObject *last = NULL, *result = PyObject_Vectorcall(op, call, 5, NULL);
    Py_DECREF(op);
    int higher = result == NULL || (last = field(tree, &l, TF_LAST_ZXID)) == NULL
        ? -1 : PyObject_RichCompareBool(zxid, last, Py_GT);
    Py_XDECREF(last);
    if (higher < 0 || (higher && set_field(tree, &l, TF_LAST_ZXID, zxid) < 0))
        Py_CLEAR(result);
    return result;
}

static PyMethodDef tree_apply_def = {"apply", (PyCFunction)(void (*)(void))tree_apply, METH_FASTCALL,
                                     "apply(tree, txn) -> TxnResult."};

/* tree_applier(Txn, DataTree, py_apply) -> apply */
static PyObject *
tree_applier(PyObject *module, PyObject *args)
{
    PyObject *txn, *tree, *py;
    if (!PyArg_ParseTuple(args, "O!O!O:tree_applier", &PyType_Type, &txn, &PyType_Type, &tree, &py))
        return NULL;
    return function_of(&tree_apply_def, Py_BuildValue("(ONNO)", txn, slot_offsets(txn, txn_slots, TX_COUNT),
                                                      layout(tree, tree_fields, TF_COUNT), py));
}

/* multi(tree, t, body, client_id, zxid, time) for core.tree's DataTree._multi, for a body of
 * (type, sub-txn) pairs none of which is an error, each of a type with an op in the tree's `_ops`
 * that is not among `not_in_multi`: each applied by its op, in order, their results in the
 * multi's TxnResult. Any other body goes to the Python method before anything is changed. */
enum { MA_TREE, MA_RESULT, MA_PY, MA_ERROR, MA_NOT_IN_MULTI, MA_COUNT };

static PyObject *
apply_multi(PyObject *spec, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *py = PyTuple_GET_ITEM(spec, MA_PY);
    if (nargs != 6 || !PyList_CheckExact(args[2]))
        return PyObject_Vectorcall(py, args, nargs, NULL);
    Layout l = layout_at(spec, MA_TREE, tree_fields);
    PyObject *body = args[2], *ops = field(args[0], &l, TF_OPS), *results = NULL, *result = NULL;
    int64_t error = PyLong_AsLongLong(PyTuple_GET_ITEM(spec, MA_ERROR)), st;
    Py_ssize_t n = PyList_GET_SIZE(body);
    if (ops == NULL || !PyDict_CheckExact(ops))
        goto python;
    for (Py_ssize_t i = 0; i < n; i++) {  /* every sub-txn one the ops take, before any is applied */
        PyObject *pair = PyList_GET_ITEM(body, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2
                || !as_int64(PyTuple_GET_ITEM(pair, 0), INT32_MIN, INT32_MAX, &st) || st == error
                || PySet_Contains(PyTuple_GET_ITEM(spec, MA_NOT_IN_MULTI), PyTuple_GET_ITEM(pair, 0)) != 0
                || PyDict_GetItemWithError(ops, PyTuple_GET_ITEM(pair, 0)) == NULL)
            goto python;
    }
    if ((results = PyList_New(n)) == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n && PyList_GET_SIZE(body) == n; i++) {
        PyObject *pair = Py_NewRef(PyList_GET_ITEM(body, i));
        PyObject *op = Py_XNewRef(PyDict_GetItemWithError(ops, PyTuple_GET_ITEM(pair, 0)));
        PyObject *call[5] = {PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1), args[3], args[4], args[5]};
        PyObject *r = op == NULL ? NULL : PyObject_Vectorcall(op, call, 5, NULL);
        Py_XDECREF(op);
        Py_DECREF(pair);
        if (r == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a multi's sub-txn type lost its op");
            goto done;
        }
        PyList_SET_ITEM(results, i, r);
    }
    if (PyList_GET_SIZE(body) != n) {
        PyErr_SetString(PyExc_RuntimeError, "a multi's body changed while it was applied");
        goto done;
    }
    PyObject *fields[5] = {args[1], zero, Py_None, Py_None, results};
    result = PyObject_Vectorcall(PyTuple_GET_ITEM(spec, MA_RESULT), fields, 5, NULL);
    goto done;
python:
    if (!PyErr_Occurred())
        result = PyObject_Vectorcall(py, args, nargs, NULL);
done:
    Py_XDECREF(ops);
    Py_XDECREF(results);
    return result;
}

static PyMethodDef apply_multi_def = {"multi", (PyCFunction)(void (*)(void))apply_multi, METH_FASTCALL,
                                      "multi(tree, t, body, client_id, zxid, time) -> TxnResult."};

/* multi_applier(DataTree, TxnResult, py_multi, error_type, not_in_multi) -> multi */
static PyObject *
multi_applier(PyObject *module, PyObject *args)
{
    PyObject *tree, *result, *py, *error, *not_in;
    if (!PyArg_ParseTuple(args, "O!O!OO!O!:multi_applier", &PyType_Type, &tree, &PyType_Type, &result, &py,
                          &PyLong_Type, &error, &PyFrozenSet_Type, &not_in))
        return NULL;
    return function_of(&apply_multi_def, Py_BuildValue("(NOOOO)", layout(tree, tree_fields, TF_COUNT), result, py,
                                                       error, not_in));
}

/* commit(server, txn) for core.server's ZKServer.commit, for a Txn that is not a session's and
 * whose zxid is not a digest-logging one (else the Python method): the tree applies it, the
 * snapshotter counts it, and the write waiting for it gets its reply, made here as
 * core.server's write_reply makes it (by write_reply itself for anything out of the common run). */
enum { CM_TXN, CM_TXN_OFFSETS, CM_OWED, CM_RESULT, CM_SERVER, CM_SNAPSHOTTER, CM_PY, CM_REPLY,
       CM_SESSION_TYPES, CM_DIGEST_INTERVAL, CM_BODIES, CM_MULTI_HEADERS, CM_MULTI, CM_MULTI_END, CM_COUNT };
/* what a response body holds (core.server's RESPONSE_BODIES) */
enum { BODY_NONE, BODY_STAT, BODY_PATH, BODY_PATH_STAT };

/* Snapshotter.txn_logged: the count raised in place while the threshold is not reached, else
 * the method. */
static int
count_logged(PyObject *snapshotter, const Layout *l)
{
    PyObject *logged = field(snapshotter, l, SN_LOGGED), *threshold = field(snapshotter, l, SN_THRESHOLD);
    int64_t n, limit;
    int r;
    if (logged != NULL && threshold != NULL && as_int64(logged, 0, INT64_MAX - 1, &n)
            && as_int64(threshold, INT64_MIN, INT64_MAX, &limit) && n + 1 < limit) {
        PyObject *next = PyLong_FromLongLong(n + 1);
        r = next == NULL ? -1 : set_field(snapshotter, l, SN_LOGGED, next);
        Py_XDECREF(next);
    } else {
        PyErr_Clear();
        PyObject *done = PyObject_CallMethod(snapshotter, "txn_logged", NULL);
        r = done == NULL ? -1 : 0;
        Py_XDECREF(done);
    }
    Py_XDECREF(logged);
    Py_XDECREF(threshold);
    return r;
}

/* A successful result's response body, as parts: the created path's UTF-8 and the Stat bytes
 * (each NULL when the body of `op` has none). */
typedef struct {
    const char *path;
    Py_ssize_t plen;
    PyObject *stat;  /* borrowed */
} Body;

/* The size of the response body of `res` (a TxnResult) to an op of type `op`, its parts in `b`;
 * -1 without an exception when the Python code must make it. */
static Py_ssize_t
body_of(PyObject *bodies, const Layout *r, PyObject *op, PyObject *res, Body *b)
{
    b->path = NULL;
    b->stat = NULL;
    b->plen = 0;
    PyObject *k = PyDict_GetItemWithError(bodies, op);
    int64_t kind = BODY_NONE;
    if ((k == NULL && PyErr_Occurred()) || (k != NULL && !as_int64(k, BODY_STAT, BODY_PATH_STAT, &kind)))
        return -1;
    Py_ssize_t size = 0;
    if (kind == BODY_PATH || kind == BODY_PATH_STAT) {
        PyObject *p = SLOT(res, r->off[TR_PATH]);
        if (p == NULL || !PyUnicode_CheckExact(p) || (b->path = PyUnicode_AsUTF8AndSize(p, &b->plen)) == NULL)
            return -1;  /* lone surrogates: the Python record encodes them */
        size += 4 + b->plen;
    }
    if (kind == BODY_STAT || kind == BODY_PATH_STAT) {
        b->stat = SLOT(res, r->off[TR_STAT]);
        if (b->stat == NULL || !PyBytes_CheckExact(b->stat))
            return -1;
        size += PyBytes_GET_SIZE(b->stat);
    }
    return size;
}

static unsigned char *
put_body(unsigned char *p, const Body *b)
{
    if (b->path != NULL) {
        put32(p, (uint32_t)b->plen);
        memcpy(p + 4, b->path, b->plen);
        p += 4 + b->plen;
    }
    if (b->stat != NULL) {
        memcpy(p, PyBytes_AS_STRING(b->stat), PyBytes_GET_SIZE(b->stat));
        p += PyBytes_GET_SIZE(b->stat);
    }
    return p;
}

/* A MultiHeader (type, done, err) and, for an error entry, its ErrorResponse. */
static unsigned char *
put_multi_error(unsigned char *p, int32_t err)
{
    put32(p, (uint32_t)-1);
    p[4] = 0;
    put32(p + 5, (uint32_t)err);
    put32(p + 9, (uint32_t)err);
    return p + 13;
}

/* The sub-results of a multi's result, checked: a list of TxnResults whose err and type are in
 * range and whose header is known; `*failed` whether any err is not 0. NULL (no exception) when
 * the Python code must answer. */
static PyObject *
multi_results(PyObject *spec, const Layout *r, PyObject *res, int *failed)
{
    PyObject *subs = SLOT(res, r->off[TR_MULTI]);
    if (subs == NULL || !PyList_CheckExact(subs))
        return NULL;
    *failed = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(subs); i++) {
        PyObject *sub = PyList_GET_ITEM(subs, i);
        int64_t err, type;
        if (!Py_IS_TYPE(sub, r->type) || !as_int64(SLOT(sub, r->off[TR_ERR]), INT32_MIN, INT32_MAX, &err)
                || !as_int64(SLOT(sub, r->off[TR_TYPE]), INT32_MIN, INT32_MAX, &type))
            return NULL;
        *failed |= err != 0;
    }
    return subs;
}

/* The reply frame for `txn` and its `result`, to a write of type `op`; NULL (its exception, if
 * any, to be cleared) when the Python write_reply must make it. */
static PyObject *
reply_of(PyObject *spec, PyObject *op, PyObject *txn, PyObject *result)
{
    const Py_ssize_t *toff = (const Py_ssize_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(spec, CM_TXN_OFFSETS));
    Layout r = layout_at(spec, CM_RESULT, result_fields);
    PyObject *bodies = PyTuple_GET_ITEM(spec, CM_BODIES), *headers = PyTuple_GET_ITEM(spec, CM_MULTI_HEADERS);
    PyObject *end = PyTuple_GET_ITEM(spec, CM_MULTI_END);
    int64_t cxid, zxid, err, multi;
    if (!Py_IS_TYPE(result, r.type) || !as_int64(SLOT(txn, toff[TX_CXID]), INT32_MIN, INT32_MAX, &cxid)
            || !as_int64(SLOT(txn, toff[TX_ZXID]), INT64_MIN, INT64_MAX, &zxid)
            || !as_int64(SLOT(result, r.off[TR_ERR]), INT32_MIN, INT32_MAX, &err)
            || !as_int64(PyTuple_GET_ITEM(spec, CM_MULTI), INT32_MIN, INT32_MAX, &multi) || !PyBytes_CheckExact(end))
        return NULL;
    int is_multi = !err && PyLong_CheckExact(op) && PyLong_AsLongLong(op) == multi;
    Body body = {NULL, 0, NULL};
    PyObject *subs = NULL;
    int failed = 0;
    Py_ssize_t size = 20;
    if (is_multi) {
        if ((subs = multi_results(spec, &r, result, &failed)) == NULL)
            return NULL;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(subs); i++) {
            PyObject *sub = PyList_GET_ITEM(subs, i), *type = SLOT(sub, r.off[TR_TYPE]);
            if (failed) {
                size += 13;
                continue;
            }
            PyObject *header = PyDict_GetItemWithError(headers, type);
            Py_ssize_t n = header == NULL || !PyBytes_CheckExact(header) ? -1 : body_of(bodies, &r, type, sub, &body);
            if (n < 0)
                return NULL;
            size += PyBytes_GET_SIZE(header) + n;
        }
        size += PyBytes_GET_SIZE(end);
    } else if (!err) {
        Py_ssize_t n = body_of(bodies, &r, op, result, &body);
        if (n < 0)
            return NULL;
        size += n;
    }
    PyObject *frame = PyBytes_FromStringAndSize(NULL, size);
    if (frame == NULL)
        return NULL;
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(frame);
    put32(p, (uint32_t)(size - 4));  /* the frame's length, then the ReplyHeader */
    put32(p + 4, (uint32_t)cxid);
    put64(p + 8, (uint64_t)zxid);
    put32(p + 16, (uint32_t)err);
    p += 20;
    if (is_multi) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(subs); i++) {
            PyObject *sub = PyList_GET_ITEM(subs, i), *type = SLOT(sub, r.off[TR_TYPE]);
            if (failed) {
                p = put_multi_error(p, (int32_t)PyLong_AsLong(SLOT(sub, r.off[TR_ERR])));
                continue;
            }
            PyObject *header = PyDict_GetItem(headers, type);  /* found above */
            memcpy(p, PyBytes_AS_STRING(header), PyBytes_GET_SIZE(header));
            p += PyBytes_GET_SIZE(header);
            body_of(bodies, &r, type, sub, &body);
            p = put_body(p, &body);
        }
        memcpy(p, PyBytes_AS_STRING(end), PyBytes_GET_SIZE(end));
    } else if (!err)
        put_body(p, &body);
    return frame;
}

static PyObject *
commit(PyObject *spec, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *py = PyTuple_GET_ITEM(spec, CM_PY);
    if (nargs != 2 || !Py_IS_TYPE(args[1], (PyTypeObject *)PyTuple_GET_ITEM(spec, CM_TXN)))
        return PyObject_Vectorcall(py, args, nargs, NULL);
    const Py_ssize_t *toff = (const Py_ssize_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(spec, CM_TXN_OFFSETS));
    Layout w = layout_at(spec, CM_OWED, owed_fields), s = layout_at(spec, CM_SERVER, server_fields);
    Layout sn = layout_at(spec, CM_SNAPSHOTTER, snapshotter_fields);
    PyObject *server = args[0], *txn = args[1];
    PyObject *t = SLOT(txn, toff[TX_TYPE]), *client = SLOT(txn, toff[TX_CLIENT]), *cxid = SLOT(txn, toff[TX_CXID]);
    int64_t zxid, every;
    int session = t == NULL ? 1 : PySet_Contains(PyTuple_GET_ITEM(spec, CM_SESSION_TYPES), t);
    if (session < 0)
        PyErr_Clear();
    if (session || client == NULL || cxid == NULL || !as_int64(SLOT(txn, toff[TX_ZXID]), 1, INT64_MAX, &zxid)
            || !as_int64(PyTuple_GET_ITEM(spec, CM_DIGEST_INTERVAL), 1, INT64_MAX, &every) || zxid % every == 0)
        return PyObject_Vectorcall(py, args, nargs, NULL);
    PyObject *tree = NULL, *result = NULL, *snapshotter = NULL, *waiting = NULL, *key = NULL, *write = NULL;
    PyObject *op = NULL, *reply = NULL, *conn = NULL, *done = NULL;
    if ((tree = field(server, &s, SV_TREE)) == NULL)
        goto done;
    PyObject *apply[2] = {tree, txn};
    if ((result = PyObject_VectorcallMethod(str_apply, apply, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)) == NULL
            || (snapshotter = field(server, &s, SV_SNAPSHOTTER)) == NULL || count_logged(snapshotter, &sn) < 0
            || (waiting = field(server, &s, SV_WAITING)) == NULL
            || (key = pair_of(Py_NewRef(client), Py_NewRef(cxid))) == NULL)
        goto done;
    if (!PyDict_CheckExact(waiting)) {
        PyErr_SetString(PyExc_TypeError, "a server's waiting writes must be a dict");
        goto done;
    }
    write = Py_XNewRef(PyDict_GetItemWithError(waiting, key));
    if (write == NULL) {
        done = PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
        goto done;
    }
    if (PyDict_DelItem(waiting, key) < 0)
        goto done;
    if ((op = field(write, &w, W_TYPE)) == NULL)
        goto done;
    if ((reply = reply_of(spec, op, txn, result)) == NULL) {
        PyErr_Clear();  /* a path with lone surrogates: the Python record encodes it */
        PyObject *call[3] = {op, txn, result};
        reply = PyObject_Vectorcall(PyTuple_GET_ITEM(spec, CM_REPLY), call, 3, NULL);
        if (reply == NULL)
            goto done;
    }
    if ((conn = field(write, &w, W_CONN)) != NULL) {
        PyObject *call[3] = {conn, write, reply};
        done = PyObject_VectorcallMethod(str_complete, call, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
done:
    Py_XDECREF(tree);
    Py_XDECREF(result);
    Py_XDECREF(snapshotter);
    Py_XDECREF(waiting);
    Py_XDECREF(key);
    Py_XDECREF(write);
    Py_XDECREF(op);
    Py_XDECREF(reply);
    Py_XDECREF(conn);
    if (done == NULL)
        return NULL;
    Py_DECREF(done);
    Py_RETURN_NONE;
}

static PyMethodDef commit_def = {"commit", (PyCFunction)(void (*)(void))commit, METH_FASTCALL,
                                 "commit(server, txn): apply a committed txn, complete its reply."};

/* committer(Txn, OwedWrite, TxnResult, ZKServer, Snapshotter, py_commit, write_reply, session_types,
 *           digest_interval, response_bodies, multi_ok_headers, multi_type, multi_end) -> commit */
static PyObject *
committer(PyObject *module, PyObject *args)
{
    PyObject *txn, *owed, *result, *server, *snapshotter, *py, *reply, *sessions, *every, *bodies, *headers, *multi,
        *end;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!OOO!O!O!O!O!O!:committer", &PyType_Type, &txn, &PyType_Type, &owed,
                          &PyType_Type, &result, &PyType_Type, &server, &PyType_Type, &snapshotter, &py, &reply,
                          &PyFrozenSet_Type, &sessions, &PyLong_Type, &every, &PyDict_Type, &bodies,
                          &PyDict_Type, &headers, &PyLong_Type, &multi, &PyBytes_Type, &end))
        return NULL;
    return function_of(&commit_def, Py_BuildValue(
        "(ONNNNNOOOOOOOO)", txn, slot_offsets(txn, txn_slots, TX_COUNT), layout(owed, owed_fields, W_COUNT),
        layout(result, result_fields, TR_COUNT), layout(server, server_fields, SV_COUNT),
        layout(snapshotter, snapshotter_fields, SN_COUNT), py, reply, sessions, every, bodies, headers, multi, end));
}

/* prep(prep, request, zxid) for core.prep's Prep.prep, for a Request (an OwedWrite among them)
 * of a live session, with a record, of a type that has a handler and is not among `slow` (check,
 * and the types whose session is not checked): the handler's txn, stamped with the time and the
 * request's ids; its ZKError becomes the error txn. A multi of plain ops (plain_multi) is
 * prep_multi's. Else the Python method. */
enum { PR_REQUEST, PR_TXN, PR_PREP, PR_TRACKER, PR_SESSION, PR_SLOW, PR_PY, PR_ZK_ERROR, PR_ERROR_TXN, PR_MULTI,
       PR_MULTI_PLAIN, PR_MULTI_CREATES, PR_CREATE_REQUEST, PR_COUNT };

/* Whether `sid` names a session of the prep's tracker that is not closing; 0 (no exception) also
 * when that cannot be read as the Python code would (its check then decides). */
static int
session_live(PyObject *spec, PyObject *self, PyObject *sid)
{
    Layout pr = layout_at(spec, PR_PREP, prep_fields), tk = layout_at(spec, PR_TRACKER, tracker_fields);
    Layout se = layout_at(spec, PR_SESSION, session_fields);
    PyObject *sessions = field(self, &pr, PF_SESSIONS);
    PyObject *table = sessions == NULL ? NULL : field(sessions, &tk, TK_SESSIONS);
    PyObject *session = table != NULL && PyDict_CheckExact(table) ? Py_XNewRef(PyDict_GetItemWithError(table, sid))
                                                                   : NULL;
    PyObject *closing = session == NULL ? NULL : field(session, &se, SE_CLOSING);
    int live = closing == Py_False;
    Py_XDECREF(sessions);
    Py_XDECREF(table);
    Py_XDECREF(session);
    Py_XDECREF(closing);
    PyErr_Clear();
    return live;
}

/* The prep's now_ms(); NULL with an exception. */
static PyObject *
prep_now(PyObject *self, const Layout *pr)
{
    PyObject *now_ms = field(self, pr, PF_NOW_MS);
    PyObject *now = now_ms == NULL ? NULL : PyObject_CallNoArgs(now_ms);
    Py_XDECREF(now_ms);
    return now;
}

/* Whether `ops` (a multi's record) are ops that prep_multi takes: a non-empty list of (type,
 * record) pairs, each of a type of `plain` (delete, setData, check), or of `creates` (create,
 * create2) with a CreateRequest whose flags are 0..3, which Prep._multi_plan passes unchanged. */
static int
plain_multi(PyObject *spec, PyObject *ops)
{
    if (!PyList_CheckExact(ops) || PyList_GET_SIZE(ops) == 0)
        return 0;
    Layout cr = layout_at(spec, PR_CREATE_REQUEST, create_request_slots);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(ops); i++) {
        PyObject *pair = PyList_GET_ITEM(ops, i), *flags;
        int64_t f;
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2)
            return 0;
        int plain = PySet_Contains(PyTuple_GET_ITEM(spec, PR_MULTI_PLAIN), PyTuple_GET_ITEM(pair, 0));
        if (plain == 1)
            continue;
        if (plain < 0 || PySet_Contains(PyTuple_GET_ITEM(spec, PR_MULTI_CREATES), PyTuple_GET_ITEM(pair, 0)) != 1
                || !Py_IS_TYPE(PyTuple_GET_ITEM(pair, 1), cr.type)
                || (flags = SLOT(PyTuple_GET_ITEM(pair, 1), cr.off[Q_FLAGS])) == NULL || !as_int64(flags, 0, 3, &f)) {
            PyErr_Clear();
            return 0;
        }
    }
    return 1;
}

/* A multi of plain ops from a live session, as Prep._multi preps it: each op by its handler, in
 * order, with the prep's undo list started so that their change records can be rolled back. When
 * an op fails (a ZKError), the records are rolled back (Prep._rollback) and the Python method
 * preps the multi again, making its error txns. */
static PyObject *
prep_multi(PyObject *spec, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *py = PyTuple_GET_ITEM(spec, PR_PY);
    Layout rq = layout_at(spec, PR_REQUEST, request_fields), pr = layout_at(spec, PR_PREP, prep_fields);
    PyObject *self = args[0], *request = args[1], *zxid = args[2];
    PyObject *t = SLOT(request, rq.off[RQ_TYPE]), *sid = SLOT(request, rq.off[RQ_SESSION]);
    PyObject *cxid = SLOT(request, rq.off[RQ_CXID]), *record = SLOT(request, rq.off[RQ_RECORD]);
    PyObject *handlers = NULL, *now = NULL, *undo = NULL, *subs = NULL, *result = NULL;
    if (sid == NULL || cxid == NULL || record == NULL || !plain_multi(spec, record) || !session_live(spec, self, sid)
            || (handlers = field(self, &pr, PF_HANDLERS)) == NULL || !PyDict_CheckExact(handlers))
        goto python;
    Py_INCREF(record);  /* its ops, as the handlers run */
    if ((now = prep_now(self, &pr)) == NULL || (undo = PyList_New(0)) == NULL || (subs = PyList_New(0)) == NULL
            || set_field(self, &pr, PF_UNDO, undo) < 0)
        goto done;
    int failed = 0;
    for (Py_ssize_t i = 0; !failed && i < PyList_GET_SIZE(record); i++) {
        PyObject *pair = PyList_GET_ITEM(record, i), *st = PyTuple_GET_ITEM(pair, 0);
        PyObject *handler = Py_XNewRef(PyDict_GetItemWithError(handlers, st));
        PyObject *call[4] = {st, PyTuple_GET_ITEM(pair, 1), request, zxid};
        PyObject *body = handler == NULL ? NULL : PyObject_Vectorcall(handler, call, 4, NULL);
        Py_XDECREF(handler);
        PyObject *sub = body == NULL ? NULL : pair_of(Py_NewRef(st), body);
        failed = sub == NULL || PyList_Append(subs, sub) < 0;
        Py_XDECREF(sub);
    }
    if (!failed) {
        PyObject *fields[6] = {sid, cxid, zxid, now, t, subs};
        result = PyObject_Vectorcall(PyTuple_GET_ITEM(spec, PR_TXN), fields, 6, NULL);
    } else if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyTuple_GET_ITEM(spec, PR_ZK_ERROR))) {
        PyErr_Clear();  /* an op failed: none of the multi's records stays, and Python makes its txn */
        PyObject *undone = PyObject_CallMethod(self, "_rollback", NULL);
        if (undone != NULL && set_field(self, &pr, PF_UNDO, Py_None) == 0)
            result = PyObject_Vectorcall(py, args, nargs, NULL);
        Py_XDECREF(undone);
    }
done:
    if (undo != NULL) {  /* the prep's undo list is None again, whatever happened */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (set_field(self, &pr, PF_UNDO, Py_None) < 0)
            Py_CLEAR(result);
        else
            PyErr_Restore(type, value, tb);
    }
    Py_DECREF(record);
    Py_XDECREF(handlers);
    Py_XDECREF(now);
    Py_XDECREF(undo);
    Py_XDECREF(subs);
    return result;
python:
    Py_XDECREF(handlers);
    PyErr_Clear();
    return PyObject_Vectorcall(py, args, nargs, NULL);
}

static PyObject *
prep(PyObject *spec, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *py = PyTuple_GET_ITEM(spec, PR_PY);
    Layout rq = layout_at(spec, PR_REQUEST, request_fields);
    if (nargs != 3 || !PyObject_TypeCheck(args[1], rq.type))
        return PyObject_Vectorcall(py, args, nargs, NULL);
    Layout pr = layout_at(spec, PR_PREP, prep_fields);
    PyObject *self = args[0], *request = args[1], *zxid = args[2];
    PyObject *t = SLOT(request, rq.off[RQ_TYPE]), *sid = SLOT(request, rq.off[RQ_SESSION]);
    PyObject *cxid = SLOT(request, rq.off[RQ_CXID]), *record = SLOT(request, rq.off[RQ_RECORD]);
    PyObject *handlers = NULL, *handler = NULL, *now = NULL, *body = NULL, *result = NULL;
    int64_t type;
    if (t != NULL && as_int64(t, INT32_MIN, INT32_MAX, &type) && type == PyLong_AsLong(PyTuple_GET_ITEM(spec, PR_MULTI)))
        return prep_multi(spec, args, nargs);
    int slow = t == NULL ? 1 : PySet_Contains(PyTuple_GET_ITEM(spec, PR_SLOW), t);
    if (slow || sid == NULL || cxid == NULL || record == NULL || record == Py_None)
        goto python;
    handlers = field(self, &pr, PF_HANDLERS);
    handler = handlers != NULL && PyDict_CheckExact(handlers) ? Py_XNewRef(PyDict_GetItemWithError(handlers, t)) : NULL;
    if (handler == NULL || !session_live(spec, self, sid))
        goto python;  /* no handler, or SESSIONEXPIRED: the Python method's */
    if ((now = prep_now(self, &pr)) == NULL)
        goto done;
    PyObject *call[4] = {t, record, request, zxid};
    body = PyObject_Vectorcall(handler, call, 4, NULL);
    if (body == NULL) {
        if (!PyErr_ExceptionMatches(PyTuple_GET_ITEM(spec, PR_ZK_ERROR)))
            goto done;
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        PyObject *code = value == NULL ? NULL : PyObject_GetAttrString(value, "code");
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        if (code != NULL) {
            PyObject *err[4] = {request, zxid, now, code};
            result = PyObject_Vectorcall(PyTuple_GET_ITEM(spec, PR_ERROR_TXN), err, 4, NULL);
            Py_DECREF(code);
        }
        goto done;
    }
    PyObject *fields[6] = {sid, cxid, zxid, now, t, body};
    result = PyObject_Vectorcall(PyTuple_GET_ITEM(spec, PR_TXN), fields, 6, NULL);
    goto done;
python:
    PyErr_Clear();
    result = PyObject_Vectorcall(py, args, nargs, NULL);
done:
    Py_XDECREF(handlers);
    Py_XDECREF(handler);
    Py_XDECREF(now);
    Py_XDECREF(body);
    return result;
}

static PyMethodDef prep_def = {"prep", (PyCFunction)(void (*)(void))prep, METH_FASTCALL,
                               "prep(prep, request, zxid) -> Txn."};

/* prepper(Request, Txn, Prep, SessionTracker, Session, slow_types, py_prep, ZKError, error_txn, multi_type,
 *         multi_plain, multi_creates, CreateRequest) -> prep */
static PyObject *
prepper(PyObject *module, PyObject *args)
{
    PyObject *request, *txn, *prep_cls, *tracker, *session, *slow, *py, *zk_error, *error_txn, *multi, *plain;
    PyObject *creates, *create_request;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!O!OOOO!O!O!O!:prepper", &PyType_Type, &request, &PyType_Type, &txn,
                          &PyType_Type, &prep_cls, &PyType_Type, &tracker, &PyType_Type, &session,
                          &PyFrozenSet_Type, &slow, &py, &zk_error, &error_txn, &PyLong_Type, &multi,
                          &PyFrozenSet_Type, &plain, &PyFrozenSet_Type, &creates, &PyType_Type, &create_request))
        return NULL;
    return function_of(&prep_def, Py_BuildValue(
        "(NONNNOOOOOOON)", layout(request, request_fields, RQ_COUNT), txn, layout(prep_cls, prep_fields, PF_COUNT),
        layout(tracker, tracker_fields, TK_COUNT), layout(session, session_fields, SE_COUNT), slow, py, zk_error,
        error_txn, multi, plain, creates, layout(create_request, create_request_slots, Q_COUNT)));
}

/* split_frames(buf, limit) for core.connection's py_split_frames: the whole frames at the start
 * of `buf` (each a 4-byte big-endian length, then that many bytes), where the first incomplete
 * one starts, and the length outside 0..limit that stopped the split (else None). */
static PyObject *
split_frames(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t limit;
    if (nargs != 2 || !as_int64(args[1], INT64_MIN, INT64_MAX, &limit))
        return PyErr_Format(PyExc_TypeError, "split_frames(buf, limit): an int limit");
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *p = view.buf;
    Py_ssize_t off = 0, end = view.len;
    PyObject *frames = PyList_New(0), *bad = NULL, *result = NULL;
    while (frames != NULL && end - off >= 4) {
        int32_t n = (int32_t)be32(p + off);
        if (n < 0 || n > limit) {
            bad = PyLong_FromLong(n);
            break;
        }
        if (end - off - 4 < n)
            break;
        PyObject *frame = PyBytes_FromStringAndSize((const char *)p + off + 4, n);
        if (frame == NULL || PyList_Append(frames, frame) < 0) {
            Py_XDECREF(frame);
            Py_CLEAR(frames);
            break;
        }
        Py_DECREF(frame);
        off += 4 + (Py_ssize_t)n;
    }
    PyBuffer_Release(&view);
    if (frames != NULL && !PyErr_Occurred())
        result = Py_BuildValue("(NnO)", frames, off, bad != NULL ? bad : Py_None);
    else
        Py_XDECREF(frames);
    Py_XDECREF(bad);
    return result;
}

/* request(server, conn, frame) for core.server's ZKServer.request, for a write of WRITE_REQUESTS:
 * its record decoded as decode_record does (None when it does not decode or names no path) and
 * the write submitted; for a multi, its ops decoded by decode_multi and the multi submitted; for
 * a getData or exists, plain_read; every other request to the Python method. */
enum { RS_WRITES, RS_DECODE_ERRORS, RS_PY, RS_MULTI, RS_DECODE_MULTI, RS_MULTI_OPS, RS_VIEW, RS_SERVER, RS_CONN,
       RS_TREE, RS_GET_DATA, RS_EXISTS, RS_OPEN, RS_PERM_READ, RS_COUNT };
static PyObject *str_data_reply;

/* A getData or exists without a watch, from a connection with no reply owed before it, of a node
 * that world:anyone may read: its reply frame (the node's GetDataResponse, or its Stat) queued on
 * the connection as ZKServer.request queues it. 1 when answered; 0 (no exception) for the Python
 * method: a watch, a missing node, other ACLs, an odd packet; -1 with an exception. */
static int
plain_read(PyObject *spec, PyObject *server, PyObject *conn, const unsigned char *p, Py_ssize_t len, int exists)
{
    int32_t n = len >= 13 ? (int32_t)be32(p + 8) : -1;
    if (n <= 0 || (Py_ssize_t)n + 12 >= len || p[12 + n] != 0)
        return 0;
    NodeView *nv = (NodeView *)PyTuple_GET_ITEM(spec, RS_VIEW);
    Layout sv = layout_at(spec, RS_SERVER, server_fields), cn = layout_at(spec, RS_CONN, conn_fields);
    Layout tr = layout_at(spec, RS_TREE, tree_fields);
    PyObject *pending = field(conn, &cn, CN_PENDING), *path = NULL, *tree = NULL, *nodes = NULL, *node = NULL;
    PyObject *reply = NULL, *zxid = NULL, *out = NULL, *frame = NULL, *count = NULL, *more = NULL;
    int64_t last;
    int r = -1;
    Py_ssize_t owed = pending == NULL ? -1 : PyObject_Length(pending);
    if (owed != 0 || (path = PyUnicode_DecodeUTF8((const char *)p + 12, n, NULL)) == NULL
            || (tree = field(server, &sv, SV_TREE)) == NULL || (nodes = field(tree, &tr, TF_NODES)) == NULL
            || !PyDict_CheckExact(nodes) || (node = Py_XNewRef(PyDict_GetItemWithError(nodes, path))) == NULL
            || !Py_IS_TYPE(node, nv->node_type) || SLOT(node, nv->off[N_ACL]) == NULL
            || !world_allows(PyTuple_GET_ITEM(spec, RS_OPEN), SLOT(node, nv->off[N_ACL]),
                             PyLong_AsLong(PyTuple_GET_ITEM(spec, RS_PERM_READ)))) {
        PyErr_Clear();
        r = 0;
        goto done;
    }
    reply = Py_XNewRef(SLOT(node, nv->off[N_REPLY]));
    if (reply == NULL || reply == Py_None)  /* built once per change of the node, by Node.data_reply */
        Py_XSETREF(reply, PyObject_CallMethodNoArgs(node, str_data_reply));
    if (reply == NULL || (zxid = field(tree, &tr, TF_LAST_ZXID)) == NULL || (out = field(conn, &cn, CN_OUT)) == NULL
            || (count = field(conn, &cn, CN_REPLIED_NOW)) == NULL)
        goto done;
    if (!PyBytes_CheckExact(reply) || PyBytes_GET_SIZE(reply) < 68 || !as_int64(zxid, INT64_MIN, INT64_MAX, &last)
            || !PyList_CheckExact(out)) {
        r = 0;
        goto done;
    }
    Py_ssize_t size = exists ? 68 : PyBytes_GET_SIZE(reply);
    if ((frame = PyBytes_FromStringAndSize(NULL, 20 + size)) == NULL)
        goto done;
    unsigned char *w = (unsigned char *)PyBytes_AS_STRING(frame);  /* length, ReplyHeader, body */
    put32(w, (uint32_t)(16 + size));
    memcpy(w + 4, p, 4);
    put64(w + 8, (uint64_t)last);
    put32(w + 16, 0);
    memcpy(w + 20, PyBytes_AS_STRING(reply) + PyBytes_GET_SIZE(reply) - size, size);
    if (PyList_Append(out, frame) == 0 && (more = PyNumber_Add(count, one)) != NULL
            && set_field(conn, &cn, CN_REPLIED_NOW, more) == 0)
        r = 1;
done:
    Py_XDECREF(pending);
    Py_XDECREF(path);
    Py_XDECREF(tree);
    Py_XDECREF(nodes);
    Py_XDECREF(node);
    Py_XDECREF(reply);
    Py_XDECREF(zxid);
    Py_XDECREF(out);
    Py_XDECREF(frame);
    Py_XDECREF(count);
    Py_XDECREF(more);
    return r;
}

static PyObject *
request(PyObject *spec, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *py = PyTuple_GET_ITEM(spec, RS_PY);
    if (nargs != 3 || !PyBytes_CheckExact(args[2]) || PyBytes_GET_SIZE(args[2]) < 8)
        return PyObject_Vectorcall(py, args, nargs, NULL);
    PyObject *frame = args[2];
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(frame);
    long code = (int32_t)be32(p + 4);
    if (code == PyLong_AsLong(PyTuple_GET_ITEM(spec, RS_GET_DATA)) || code == PyLong_AsLong(PyTuple_GET_ITEM(spec, RS_EXISTS))) {
        int r = plain_read(spec, args[0], args[1], p, PyBytes_GET_SIZE(frame),
                           code == PyLong_AsLong(PyTuple_GET_ITEM(spec, RS_EXISTS)));
        return r < 0 ? NULL : r ? Py_NewRef(Py_None) : PyObject_Vectorcall(py, args, nargs, NULL);
    }
    PyObject *op = PyLong_FromLong(code), *xid = NULL, *decoded = NULL, *record = NULL;
    PyObject *result = NULL;
    PyObject *cls = op == NULL ? NULL : PyDict_GetItemWithError(PyTuple_GET_ITEM(spec, RS_WRITES), op);
    int multi = code == PyLong_AsLong(PyTuple_GET_ITEM(spec, RS_MULTI));
    if (cls == NULL && !multi) {
        Py_XDECREF(op);
        return PyErr_Occurred() ? NULL : PyObject_Vectorcall(py, args, nargs, NULL);
    }
    PyObject *decode = multi ? NULL : PyObject_GetAttr(cls, str_decode);
    PyObject *at = PyLong_FromLong(8);
    if ((!multi && decode == NULL) || at == NULL || (xid = PyLong_FromLong((int32_t)be32(p))) == NULL)
        goto done;
    if (multi) {  /* None when it does not decode: a MARSHALLINGERROR txn, made by prep */
        PyObject *call[3] = {frame, at, PyTuple_GET_ITEM(spec, RS_MULTI_OPS)};
        if ((record = PyObject_Vectorcall(PyTuple_GET_ITEM(spec, RS_DECODE_MULTI), call, 3, NULL)) == NULL)
            goto done;
        goto submit;
    }
    PyObject *call[2] = {frame, at};
    decoded = PyObject_Vectorcall(decode, call, 2, NULL);
    if (decoded == NULL) {
        if (!PyErr_ExceptionMatches(PyTuple_GET_ITEM(spec, RS_DECODE_ERRORS)))
            goto done;
        PyErr_Clear();
        record = Py_NewRef(Py_None);  /* a MARSHALLINGERROR txn, made by prep */
    } else {
        if (!PyTuple_Check(decoded) || PyTuple_GET_SIZE(decoded) < 1) {
            PyErr_SetString(PyExc_TypeError, "a record's decode gives (record, offset)");
            goto done;
        }
        record = Py_NewRef(PyTuple_GET_ITEM(decoded, 0));
        PyObject *path = PyObject_GetAttr(record, str_path);  /* getattr(record, "path", "") */
        if (path == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError))
                goto done;
            PyErr_Clear();
        } else if (path == Py_None)
            Py_SETREF(record, Py_NewRef(Py_None));
        Py_XDECREF(path);
    }
submit:;
    PyObject *submit[6] = {args[0], args[1], xid, op, record, frame};
    result = PyObject_VectorcallMethod(str_submit, submit, 6 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
done:
    Py_XDECREF(op);
    Py_XDECREF(decode);
    Py_XDECREF(at);
    Py_XDECREF(xid);
    Py_XDECREF(decoded);
    Py_XDECREF(record);
    return result;
}

/* submit(server, conn, xid, op, record, frame) for core.server's ZKServer.submit, for a
 * connection that is not read-only (else the Python method): the write's OwedWrite takes its
 * reply slot and waits under (session id, xid); the server stops reading past
 * globalOutstandingLimit; the consensus gets the write. */
enum { SU_OWED, SU_CONN, SU_SERVER, SU_PY, SU_COUNT };

static PyObject *
submit(PyObject *spec, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *py = PyTuple_GET_ITEM(spec, SU_PY);
    Layout c = layout_at(spec, SU_CONN, conn_fields), s = layout_at(spec, SU_SERVER, server_fields);
    if (nargs != 6 || !PyBytes_CheckExact(args[5]) || PyBytes_GET_SIZE(args[5]) < 8)
        return PyObject_Vectorcall(py, args, nargs, NULL);
    PyObject *server = args[0], *conn = args[1], *xid = args[2], *frame = args[5];
    PyObject *read_only = field(conn, &c, CN_READ_ONLY);
    if (read_only != Py_False) {
        Py_XDECREF(read_only);
        PyErr_Clear();
        return PyObject_Vectorcall(py, args, nargs, NULL);
    }
    Py_DECREF(read_only);
    PyObject *sid = NULL, *raw = NULL, *auth = NULL, *at = NULL, *write = NULL, *pending = NULL, *waiting = NULL;
    PyObject *key = NULL, *config = NULL, *limit = NULL, *consensus = NULL, *done = NULL;
    if ((sid = field(conn, &c, CN_SESSION_ID)) == NULL || (auth = field(conn, &c, CN_AUTH_IDS)) == NULL
            || (at = field(conn, &c, CN_RECEIVED_AT)) == NULL
            || (raw = PyBytes_FromStringAndSize(PyBytes_AS_STRING(frame) + 8, PyBytes_GET_SIZE(frame) - 8)) == NULL)
        goto done;
    PyObject *fields[8] = {sid, xid, args[3], args[4], raw, auth, conn, at};
    if ((write = PyObject_Vectorcall(PyTuple_GET_ITEM(spec, SU_OWED), fields, 8, NULL)) == NULL
            || (pending = field(conn, &c, CN_PENDING)) == NULL)
        goto done;
    PyObject *appended = PyObject_CallMethodOneArg(pending, str_append, write);  /* its reply slot */
    if (appended == NULL)
        goto done;
    Py_DECREF(appended);
    if ((waiting = field(server, &s, SV_WAITING)) == NULL || (key = pair_of(Py_NewRef(sid), Py_NewRef(xid))) == NULL
            || PyObject_SetItem(waiting, key, write) < 0)
        goto done;
    Py_ssize_t count = PyObject_Size(waiting);
    if (count < 0 || (config = field(server, &s, SV_CONFIG)) == NULL
            || (limit = PyObject_GetAttr(config, str_outstanding_limit)) == NULL)
        goto done;
    PyObject *n = PyLong_FromSsize_t(count);
    int over = n == NULL ? -1 : PyObject_RichCompareBool(n, limit, Py_GT);
    Py_XDECREF(n);
    if (over < 0)
        goto done;
    if (over) {  /* globalOutstandingLimit: stop reading until it drops */
        PyObject *stats = field(server, &s, SV_STATS);
        PyObject *throttled = stats == NULL ? NULL : PyObject_CallMethod(stats, "throttle", "O", conn);
        Py_XDECREF(stats);
        if (throttled == NULL)
            goto done;
        Py_DECREF(throttled);
    }
    if ((consensus = field(server, &s, SV_CONSENSUS)) != NULL) {
        PyObject *call[2] = {consensus, write};
        done = PyObject_VectorcallMethod(str_submit, call, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
done:
    Py_XDECREF(sid);
    Py_XDECREF(raw);
    Py_XDECREF(auth);
    Py_XDECREF(at);
    Py_XDECREF(write);
    Py_XDECREF(pending);
    Py_XDECREF(waiting);
    Py_XDECREF(key);
    Py_XDECREF(config);
    Py_XDECREF(limit);
    Py_XDECREF(consensus);
    if (done == NULL)
        return NULL;
    Py_DECREF(done);
    Py_RETURN_NONE;
}

/* applied(prep, zxid) for core.prep's Prep.applied: the change records of every txn up to `zxid`
 * forgotten. Change records of another class, or odd values, go to the Python method. */
enum { AD_PREP, AD_CHANGE, AD_PY, AD_COUNT };

static PyObject *
applied(PyObject *spec, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *py = PyTuple_GET_ITEM(spec, AD_PY);
    Layout pr = layout_at(spec, AD_PREP, prep_fields), ch = layout_at(spec, AD_CHANGE, change_fields);
    int64_t upto, zxid;
    if (nargs != 2 || !as_int64(args[1], INT64_MIN, INT64_MAX, &upto))
        return PyObject_Vectorcall(py, args, nargs, NULL);
    PyObject *order = field(args[0], &pr, PF_ORDER), *pending = field(args[0], &pr, PF_PENDING);
    PyObject *head = NULL, *result = NULL;
    if (order == NULL || pending == NULL || !PyDict_CheckExact(pending)) {
        PyErr_Clear();
        result = PyObject_Vectorcall(py, args, nargs, NULL);
        goto done;
    }
    Py_ssize_t n;
    while ((n = PyObject_Size(order)) > 0) {
        if ((head = PySequence_GetItem(order, 0)) == NULL)
            goto done;
        PyObject *path = Py_IS_TYPE(head, ch.type) ? SLOT(head, ch.off[CF_PATH]) : NULL;
        if (path == NULL || !as_int64(SLOT(head, ch.off[CF_ZXID]), INT64_MIN, INT64_MAX, &zxid)) {
            result = PyObject_Vectorcall(py, args, nargs, NULL);  /* the rest, as Python does it */
            goto done;
        }
        if (zxid > upto)
            break;
        PyObject *popped = PyObject_CallMethodNoArgs(order, str_popleft);
        if (popped == NULL)
            goto done;
        Py_DECREF(popped);
        Py_INCREF(path);
        PyObject *now = PyDict_GetItemWithError(pending, path);
        int r = now == head ? PyDict_DelItem(pending, path) : PyErr_Occurred() ? -1 : 0;
        Py_DECREF(path);
        Py_CLEAR(head);
        if (r < 0)
            goto done;
    }
    if (n >= 0)
        result = Py_NewRef(Py_None);
done:
    Py_XDECREF(order);
    Py_XDECREF(pending);
    Py_XDECREF(head);
    return result;
}

static PyMethodDef request_def = {"request", (PyCFunction)(void (*)(void))request, METH_FASTCALL,
                                  "request(server, conn, frame): dispatch a request packet."};
static PyMethodDef submit_def = {"submit", (PyCFunction)(void (*)(void))submit, METH_FASTCALL,
                                 "submit(server, conn, xid, op, record, frame): hand a write to the consensus."};
static PyMethodDef applied_def = {"applied", (PyCFunction)(void (*)(void))applied, METH_FASTCALL,
                                  "applied(prep, zxid): forget the change records up to zxid."};

/* requester(write_requests, decode_errors, py_request, multi_type, decode_multi, multi_ops, node_view, ZKServer,
 *           ServerConnection, DataTree, get_data_type, exists_type, perm_read) -> request */
static PyObject *
requester(PyObject *module, PyObject *args)
{
    PyObject *writes, *errors, *py, *multi, *decode_multi, *multi_ops, *view, *server, *conn, *tree, *get, *exists;
    PyObject *read;
    if (!PyArg_ParseTuple(args, "O!O!OO!OO!O!O!O!O!O!O!O!:requester", &PyDict_Type, &writes, &PyTuple_Type, &errors,
                          &py, &PyLong_Type, &multi, &decode_multi, &PyDict_Type, &multi_ops, &NodeViewType, &view,
                          &PyType_Type, &server, &PyType_Type, &conn, &PyType_Type, &tree, &PyLong_Type, &get,
                          &PyLong_Type, &exists, &PyLong_Type, &read))
        return NULL;
    return function_of(&request_def, Py_BuildValue(
        "(OOOOOOONNNOO[Oi]O)", writes, errors, py, multi, decode_multi, multi_ops, view,
        layout(server, server_fields, SV_COUNT), layout(conn, conn_fields, CN_COUNT),
        layout(tree, tree_fields, TF_COUNT), get, exists, Py_None, -1, read));
}

/* submitter(OwedWrite, ServerConnection, ZKServer, py_submit) -> submit */
static PyObject *
submitter(PyObject *module, PyObject *args)
{
    PyObject *owed, *conn, *server, *py;
    if (!PyArg_ParseTuple(args, "O!O!O!O:submitter", &PyType_Type, &owed, &PyType_Type, &conn, &PyType_Type,
                          &server, &py))
        return NULL;
    return function_of(&submit_def, Py_BuildValue("(ONNO)", owed, layout(conn, conn_fields, CN_COUNT),
                                                  layout(server, server_fields, SV_COUNT), py));
}

/* applier(Prep, Change, py_applied) -> applied */
static PyObject *
applier(PyObject *module, PyObject *args)
{
    PyObject *prep_cls, *change, *py;
    if (!PyArg_ParseTuple(args, "O!O!O:applier", &PyType_Type, &prep_cls, &PyType_Type, &change, &py))
        return NULL;
    return function_of(&applied_def, Py_BuildValue("(NNO)", layout(prep_cls, prep_fields, PF_COUNT),
                                                   layout(change, change_fields, CF_COUNT), py));
}

/* now_ms() of ms_clock(seconds): int(seconds() * 1000), a reactor's time in whole milliseconds. */
static PyObject *
ms_now(PyObject *seconds, PyObject *unused)
{
    PyObject *t = PyObject_CallNoArgs(seconds);
    if (t == NULL)
        return NULL;
    if (PyFloat_CheckExact(t)) {
        double ms = PyFloat_AS_DOUBLE(t) * 1000.0;
        if (ms > -9.0e15 && ms < 9.0e15) {  /* exact in a double and in a long long: truncated as int() */
            Py_DECREF(t);
            return PyLong_FromLongLong((long long)ms);
        }
    }
    PyObject *thousand = PyLong_FromLong(1000);
    PyObject *product = thousand == NULL ? NULL : PyNumber_Multiply(t, thousand);
    PyObject *ms = product == NULL ? NULL : PyNumber_Long(product);
    Py_DECREF(t);
    Py_XDECREF(thousand);
    Py_XDECREF(product);
    return ms;
}

static PyMethodDef ms_now_def = {"now_ms", ms_now, METH_NOARGS, "now_ms() -> int(seconds() * 1000)."};

/* ms_clock(seconds) -> now_ms */
static PyObject *
ms_clock(PyObject *module, PyObject *seconds)
{
    if (!PyCallable_Check(seconds))
        return PyErr_Format(PyExc_TypeError, "%R is not callable", seconds);
    return function_of(&ms_now_def, Py_NewRef(seconds));
}

/* -- module ------------------------------------------------------------------------------- */

/* A C function as a method: bound to an instance when looked up on one, as a Python function
 * is, and a method descriptor, so that a call through an instance (Python's, or
 * PyObject_VectorcallMethod's) passes the instance without making a bound method first. */
typedef struct {
    PyObject_HEAD
    PyObject *func;
    vectorcallfunc vectorcall;
} Method;

static PyTypeObject MethodType;

static PyObject *
method_call(Method *m, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return PyObject_Vectorcall(m->func, args, nargsf, kwnames);
}

static PyObject *
method_get(Method *m, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None)
        return Py_NewRef(m);
    return PyMethod_New((PyObject *)m, obj);
}

static int
method_traverse(Method *m, visitproc visit, void *arg)
{
    Py_VISIT(m->func);
    return 0;
}

static void
method_dealloc(Method *m)
{
    PyObject_GC_UnTrack(m);
    Py_CLEAR(m->func);
    PyObject_GC_Del(m);
}

static PyTypeObject MethodType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "core._native.Method",
    .tp_basicsize = sizeof(Method),
    .tp_dealloc = (destructor)method_dealloc,
    .tp_vectorcall_offset = offsetof(Method, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "A C function as a method (core.native.method).",
    .tp_traverse = (traverseproc)method_traverse,
    .tp_descr_get = (descrgetfunc)method_get,
};

static PyObject *
instancemethod(PyObject *module, PyObject *func)
{
    if (!PyCallable_Check(func))
        return PyErr_Format(PyExc_TypeError, "%R is not callable", func);
    Method *m = PyObject_GC_New(Method, &MethodType);
    if (m == NULL)
        return NULL;
    m->func = Py_NewRef(func);
    m->vectorcall = (vectorcallfunc)method_call;
    PyObject_GC_Track(m);
    return (PyObject *)m;
}

static PyMethodDef module_methods[] = {
    {"install_constructor", install_constructor, METH_VARARGS,
     "install_constructor(cls, names, defaults, untracked): a C constructor for a slotted dataclass."},
    {"multi_decoder", multi_decoder, METH_O,
     "multi_decoder(py_decode_multi) -> decode_multi(buf, off, allowed)."},
    {"txn_encoder", txn_encoder, METH_VARARGS,
     "txn_encoder(Txn, bodies, digest_codec, multi_type, py_encode_txn) -> encode_txn(txn)."},
    {"set_data_prepper", set_data_prepper, METH_VARARGS,
     "set_data_prepper(node_view, Change, SetDataRequest, SetDataTxn, py_set_data, perm_write, Prep, DataTree) "
     "-> set_data(prep, t, rec, request, zxid)."},
    {"create_prepper", create_prepper, METH_VARARGS,
     "create_prepper(node_view, Change, CreateRequest, CreateTxn, py_create, perm_create, types, Prep, DataTree) "
     "-> create(prep, t, rec, request, zxid)."},
    {"delete_prepper", delete_prepper, METH_VARARGS,
     "delete_prepper(node_view, Change, DeleteRequest, DeleteTxn, py_delete, perm_delete, Prep, DataTree) "
     "-> delete(prep, t, rec, request, zxid)."},
    {"create_applier", create_applier, METH_VARARGS,
     "create_applier(node_view, CreateTxn, TxnResult, py_create, types, created, children_changed, DataTree) "
     "-> create(tree, t, body, client_id, zxid, time)."},
    {"delete_applier", delete_applier, METH_VARARGS,
     "delete_applier(node_view, DeleteTxn, TxnResult, py_delete, no_children, deleted, children_changed, "
     "DataTree) -> delete(tree, t, body, client_id, zxid, time)."},
    {"set_data_applier", set_data_applier, METH_VARARGS,
     "set_data_applier(node_view, SetDataTxn, TxnResult, py_set_data, event_type, DataTree) "
     "-> set_data(tree, t, body, client_id, zxid, time)."},
    {"completer", completer, METH_VARARGS,
     "completer(OwedWrite, ServerConnection, ZKServer, py_complete) -> complete(conn, write, reply)."},
    {"tree_applier", tree_applier, METH_VARARGS, "tree_applier(Txn, DataTree, py_apply) -> apply(tree, txn)."},
    {"multi_applier", multi_applier, METH_VARARGS,
     "multi_applier(DataTree, TxnResult, py_multi, error_type, not_in_multi) -> multi(tree, t, body, client_id, "
     "zxid, time)."},
    {"committer", committer, METH_VARARGS,
     "committer(Txn, OwedWrite, TxnResult, ZKServer, Snapshotter, py_commit, write_reply, session_types, "
     "digest_interval, response_bodies, multi_ok_headers, multi_type, multi_end) -> commit(server, txn)."},
    {"prepper", prepper, METH_VARARGS,
     "prepper(Request, Txn, Prep, SessionTracker, Session, slow_types, py_prep, ZKError, error_txn, multi_type, "
     "multi_plain, multi_creates, CreateRequest) -> prep(prep, request, zxid)."},
    {"split_frames", (PyCFunction)(void (*)(void))split_frames, METH_FASTCALL,
     "split_frames(buf, limit) -> (frames, offset, bad length or None)."},
    {"requester", requester, METH_VARARGS,
     "requester(write_requests, decode_errors, py_request, multi_type, decode_multi, multi_ops, node_view, ZKServer, "
     "ServerConnection, DataTree, get_data_type, exists_type, perm_read) -> request(server, conn, frame)."},
    {"submitter", submitter, METH_VARARGS,
     "submitter(OwedWrite, ServerConnection, ZKServer, py_submit) -> submit(server, conn, xid, op, record, frame)."},
    {"applier", applier, METH_VARARGS, "applier(Prep, Change, py_applied) -> applied(prep, zxid)."},
    {"ms_clock", ms_clock, METH_O, "ms_clock(seconds) -> now_ms(): int(seconds() * 1000)."},
    {"valid_path", valid_path, METH_O, "valid_path(path) -> whether core.paths.validate_path takes it."},
    {"instancemethod", instancemethod, METH_O,
     "instancemethod(f): a descriptor that binds f to an instance as a function does."},
    {NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "core._native", "The optional C accelerator (see core/native.py).", -1,
    module_methods,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    crc_init();
    if (PyType_Ready(&CodecType) < 0 || PyType_Ready(&NodeViewType) < 0 || PyType_Ready(&MakerType) < 0
            || PyType_Ready(&MethodType) < 0)
        return NULL;
    str_last = PyUnicode_InternFromString("last");
    str_bytes_of = PyUnicode_InternFromString("bytes_of");
    str_maker = PyUnicode_InternFromString("_native_maker");
    str_native_codec = PyUnicode_InternFromString("native_codec");
    str_path = PyUnicode_InternFromString("path");
    if (str_last == NULL || str_bytes_of == NULL || str_maker == NULL || str_native_codec == NULL || str_path == NULL)
        return NULL;
    static const struct { PyObject **name; const char *text; } names[] = {
        {&str_perms, "perms"}, {&str_id, "id"}, {&str_scheme, "scheme"}, {&str_append, "append"},
        {&str_triggered, "triggered"}, {&str_data_reply, "data_reply"}, {&str_access, "access"},
        {&str_fixup, "fixup"}, {&str_auth, "auth"}, {&str_session_id, "session_id"}, {&str_root, "/"},
        {&str_intern_acl, "intern_acl"}, {&str_zookeeper, "/zookeeper"},
        {&str_popleft, "popleft"}, {&str_apply, "apply"}, {&str_complete, "complete"}, {&str_submit, "submit"},
        {&str_decode, "decode"}, {&str_outstanding_limit, "global_outstanding_limit"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if ((*names[i].name = PyUnicode_InternFromString(names[i].text)) == NULL)
            return NULL;
    if ((zero = PyLong_FromLong(0)) == NULL || (one = PyLong_FromLong(1)) == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Codec", (PyObject *)&CodecType) < 0
            || PyModule_AddObjectRef(m, "NodeView", (PyObject *)&NodeViewType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
