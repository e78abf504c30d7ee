/* rpcx.codec._ctyped: the typed CBOR path of rpcx.codec._typed, in C.
 *
 * An optional part of the compiled build (hatch_build.py builds it beside the mypyc
 * modules; the pure build never needs it). It follows the same plan (a tree of
 * rpcx.codec._typed.Node, copied once into C structs by prepare()) and keeps the same
 * contract: encode() returns exactly the bytes of rpcx.codec._typed.encode and decode()
 * exactly its value, or they return the plan's fallback object on anything outside the
 * common case (then the codec takes the ordinary path, which also produces every
 * error). So a message gives the same bytes and values whichever path it takes; the
 * tests compare the paths on arbitrary values and hostile input
 * (tests/codec/test_ctyped.py).
 *
 * What makes it cheaper than the mypyc module: no per-node dispatch through Python
 * objects, a struct's instance built by writing its slots at their offsets, output into
 * one growing buffer, and a decimal made from its text (exact, one call).
 *
 * Safety: every read is bounds-checked against the input's length; recursion is bounded
 * by the decoder's max_depth and by MAX_NESTING both ways; any failure, including a
 * Python exception raised by a class or a copy function, gives up (an exception that is
 * not an Exception, such as KeyboardInterrupt, propagates).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

enum {
    K_BOOL = 1, K_INT = 2, K_FLOAT = 3, K_DECIMAL = 4, K_STRING = 5, K_BYTES = 6,
    K_ENUM = 7, K_STRUCT = 8, K_LIST = 9, K_OPTIONAL = 10, K_CONVERT = 11
};
enum { DEFAULT_CONST = 0, DEFAULT_LIST = 1, DEFAULT_DICT = 2, DEFAULT_COPY = 3 };

#define DECIMAL_MAX_DIGITS 19
#define DECIMAL_MAX_EXPONENT 6144
#define FAST_ADJUSTED (DECIMAL_MAX_EXPONENT - DECIMAL_MAX_DIGITS)
#define MANTISSA_LIMIT 10000000000000000000ULL /* 10**19 */
#define MAX_NESTING 200 /* deeper than this, give up (the ordinary path decides); with
                          * the frames below (under 400 bytes a level), 80 KiB of stack */
#define SMALL_FIELDS 16
#define SMALL_ENUM 64

static PyObject *value_name; /* "_value_" */

typedef struct {
    PyObject *name;          /* the attribute (or keyword) name */
    uint64_t tag;
    Py_ssize_t index;        /* parameters: the position in the tuple */
    Py_ssize_t node;         /* the field's node (OPTIONAL for an optional field) */
    Py_ssize_t inner;        /* what a value that is not None is encoded as */
    int optional, null_if_none, omit_empty, required, default_kind;
    PyObject *default_value; /* strong */
    PyObject *copy;          /* strong, or NULL */
    PyObject *key;           /* bytes: the tag as CBOR */
    Py_ssize_t offset;       /* the slot's offset in an instance, or -1 */
} CField;

typedef struct {
    int kind;
    Py_ssize_t item;     /* LIST, OPTIONAL: the child node */
    PyObject *cls;       /* STRUCT, ENUM: strong, or NULL (a method's parameters) */
    PyObject *by_value;  /* ENUM: strong dict */
    PyObject **small_members; /* ENUM: borrowed (by_value holds them), by value 0..SMALL_ENUM-1 */
    Py_ssize_t nmembers; /* ENUM: the members of the class, and their int values */
    PyObject **members;  /* ENUM: borrowed */
    long long *values;
    Py_ssize_t max_len;  /* LIST */
    Py_ssize_t nfields;
    CField *fields;      /* STRUCT */
    int by_slots;        /* STRUCT: an instance is built with tp_alloc and its slots */
    int slot_reads;      /* STRUCT: an exact instance's fields may be read from slots */
} CNode;

typedef struct {
    PyObject_HEAD
    Py_ssize_t count;
    CNode *nodes;
    PyObject *fallback;
    PyObject *decimal_type;
} PlanObject;

static PyTypeObject PlanType;

/* ------------------------------------------------------------------ the plan */

/* The plan holds classes, defaults and functions, which may refer back to it (a class
 * whose attribute keeps a decoder): the collector must see those references. There is
 * no tp_clear: a plan stays whole while anything can call it; the other objects of such
 * a cycle (a class, a dict) break it. */
static int
plan_traverse(PlanObject *self, visitproc visit, void *arg)
{
    if (self->nodes != NULL) {
        for (Py_ssize_t i = 0; i < self->count; i++) {
            CNode *node = &self->nodes[i];
            Py_VISIT(node->cls);
            Py_VISIT(node->by_value);
            if (node->fields != NULL) {
                for (Py_ssize_t j = 0; j < node->nfields; j++) {
                    CField *f = &node->fields[j];
                    Py_VISIT(f->name);
                    Py_VISIT(f->default_value);
                    Py_VISIT(f->copy);
                    Py_VISIT(f->key);
                }
            }
        }
    }
    Py_VISIT(self->fallback);
    Py_VISIT(self->decimal_type);
    return 0;
}

static void
plan_dealloc(PlanObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->nodes != NULL) {
        for (Py_ssize_t i = 0; i < self->count; i++) {
            CNode *node = &self->nodes[i];
            Py_XDECREF(node->cls);
            Py_XDECREF(node->by_value);
            PyMem_Free(node->small_members);
            PyMem_Free(node->members);
            PyMem_Free(node->values);
            if (node->fields != NULL) {
                for (Py_ssize_t j = 0; j < node->nfields; j++) {
                    CField *f = &node->fields[j];
                    Py_XDECREF(f->name);
                    Py_XDECREF(f->default_value);
                    Py_XDECREF(f->copy);
                    Py_XDECREF(f->key);
                }
                PyMem_Free(node->fields);
            }
        }
        PyMem_Free(self->nodes);
    }
    Py_XDECREF(self->fallback);
    Py_XDECREF(self->decimal_type);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject PlanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rpcx.codec._ctyped.Plan",
    .tp_basicsize = sizeof(PlanObject),
    .tp_dealloc = (destructor)plan_dealloc,
    .tp_traverse = (traverseproc)plan_traverse,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A typed CBOR plan, copied into C (made by prepare()).",
};

/* An int attribute of a plan object. */
static int
int_attr(PyObject *obj, const char *name, Py_ssize_t *out)
{
    PyObject *value = PyObject_GetAttrString(obj, name);
    if (value == NULL)
        return -1;
    Py_ssize_t result = PyLong_AsSsize_t(value);
    Py_DECREF(value);
    if (result == -1 && PyErr_Occurred())
        return -1;
    *out = result;
    return 0;
}

static int
bool_attr(PyObject *obj, const char *name, int *out)
{
    PyObject *value = PyObject_GetAttrString(obj, name);
    if (value == NULL)
        return -1;
    int result = PyObject_IsTrue(value);
    Py_DECREF(value);
    if (result < 0)
        return -1;
    *out = result;
    return 0;
}

/* Give every node reachable from ``node`` an index (``seen``: id → index), in ``order``.
 * Returns 1 when a node the C code does not take (CONVERT) is reachable, 0, or -1. */
static int
collect(PyObject *node, PyObject *seen, PyObject *order)
{
    PyObject *key = PyLong_FromVoidPtr(node);
    if (key == NULL)
        return -1;
    int known = PyDict_Contains(seen, key);
    if (known != 0) {
        Py_DECREF(key);
        return known < 0 ? -1 : 0;
    }
    PyObject *index = PyLong_FromSsize_t(PyList_GET_SIZE(order));
    if (index == NULL || PyDict_SetItem(seen, key, index) < 0 || PyList_Append(order, node) < 0) {
        Py_XDECREF(index);
        Py_DECREF(key);
        return -1;
    }
    Py_DECREF(index);
    Py_DECREF(key);
    Py_ssize_t kind;
    if (int_attr(node, "kind", &kind) < 0)
        return -1;
    if (kind == K_CONVERT || kind < K_BOOL || kind > K_CONVERT)
        return 1;
    if (kind == K_LIST || kind == K_OPTIONAL) {
        PyObject *item = PyObject_GetAttrString(node, "item");
        if (item == NULL)
            return -1;
        int result = item == Py_None ? -1 : collect(item, seen, order);
        if (item == Py_None)
            PyErr_SetString(PyExc_ValueError, "a list or optional node without its item");
        Py_DECREF(item);
        return result;
    }
    if (kind == K_STRUCT) {
        PyObject *fields = PyObject_GetAttrString(node, "fields");
        if (fields == NULL)
            return -1;
        if (!PyList_Check(fields)) {
            Py_DECREF(fields);
            PyErr_SetString(PyExc_TypeError, "a struct node's fields must be a list");
            return -1;
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(fields); i++) {
            PyObject *child = PyObject_GetAttrString(PyList_GET_ITEM(fields, i), "node");
            if (child == NULL) {
                Py_DECREF(fields);
                return -1;
            }
            int result = collect(child, seen, order);
            Py_DECREF(child);
            if (result != 0) {
                Py_DECREF(fields);
                return result;
            }
        }
        Py_DECREF(fields);
    }
    return 0;
}

static Py_ssize_t
index_of(PyObject *seen, PyObject *node)
{
    PyObject *key = PyLong_FromVoidPtr(node);
    if (key == NULL)
        return -1;
    PyObject *index = PyDict_GetItemWithError(seen, key);
    Py_DECREF(key);
    if (index == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_KeyError, "node not collected");
        return -1;
    }
    return PyLong_AsSsize_t(index);
}

static Py_ssize_t
child_index(PyObject *seen, PyObject *obj, const char *name)
{
    PyObject *child = PyObject_GetAttrString(obj, name);
    if (child == NULL)
        return -1;
    Py_ssize_t index = index_of(seen, child);
    Py_DECREF(child);
    return index;
}

/* The slot offsets of a struct whose instances the plan builds with object.__new__ and
 * the slots' setters (``setters`` is set): each field a writable object slot of the
 * class itself. Leaves by_slots 0 when anything is unusual. */
static int
find_slots(CNode *cnode)
{
    PyTypeObject *type = (PyTypeObject *)cnode->cls;
    if (type->tp_flags & Py_TPFLAGS_IS_ABSTRACT || type->tp_alloc != PyType_GenericAlloc)
        return 0;
    /* object.__new__ refuses a class whose nearest built-in base is not object (a dict
     * subclass, say): its instances need that base's own construction */
    PyTypeObject *base = type;
    while (base != NULL && (base->tp_flags & Py_TPFLAGS_HEAPTYPE))
        base = base->tp_base;
    if (base != &PyBaseObject_Type)
        return 0;
    PyObject *dict = type->tp_dict;
    for (Py_ssize_t j = 0; j < cnode->nfields; j++) {
        PyObject *descr = PyDict_GetItemWithError(dict, cnode->fields[j].name);
        if (descr == NULL) {
            if (PyErr_Occurred())
                return -1;
            return 0;
        }
        if (!Py_IS_TYPE(descr, &PyMemberDescr_Type))
            return 0;
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != T_OBJECT_EX || (member->flags & READONLY))
            return 0;
        if (((PyDescrObject *)descr)->d_type != type)
            return 0;
    }
    for (Py_ssize_t j = 0; j < cnode->nfields; j++) {
        PyObject *descr = PyDict_GetItemWithError(dict, cnode->fields[j].name);
        Py_ssize_t offset = ((PyMemberDescrObject *)descr)->d_member->offset;
        for (Py_ssize_t k = 0; k < j; k++) {
            if (cnode->fields[k].offset == offset) { /* two fields, one slot */
                for (k = 0; k < j; k++)
                    cnode->fields[k].offset = -1;
                return 0;
            }
        }
        cnode->fields[j].offset = offset;
    }
    cnode->by_slots = 1;
    /* reading a slot directly is what getattr does when the class keeps the generic
     * attribute lookup (an attrs class does) */
    cnode->slot_reads = type->tp_getattro == PyObject_GenericGetAttr;
    return 0;
}

static int
fill_field(CField *f, PyObject *field, PyObject *seen)
{
    Py_ssize_t tag;
    f->offset = -1;
    f->name = PyObject_GetAttrString(field, "name");
    if (f->name == NULL || !PyUnicode_Check(f->name))
        goto bad;
    if (int_attr(field, "tag", &tag) < 0 || int_attr(field, "index", &f->index) < 0)
        return -1;
    if (tag < 0) {
        PyErr_SetString(PyExc_ValueError, "a negative field tag");
        return -1;
    }
    f->tag = (uint64_t)tag;
    if ((f->node = child_index(seen, field, "node")) < 0)
        return -1;
    if ((f->inner = child_index(seen, field, "inner")) < 0)
        return -1;
    Py_ssize_t omit, kind;
    if (bool_attr(field, "optional", &f->optional) < 0
            || bool_attr(field, "null_if_none", &f->null_if_none) < 0
            || int_attr(field, "omit_empty", &omit) < 0
            || bool_attr(field, "required", &f->required) < 0
            || int_attr(field, "default_kind", &kind) < 0)
        return -1;
    f->omit_empty = (int)omit;
    f->default_kind = (int)kind;
    f->default_value = PyObject_GetAttrString(field, "default");
    if (f->default_value == NULL)
        return -1;
    PyObject *copy = PyObject_GetAttrString(field, "copy");
    if (copy == NULL)
        return -1;
    if (copy == Py_None)
        Py_DECREF(copy);
    else
        f->copy = copy;
    if (f->default_kind == DEFAULT_COPY && f->copy == NULL) {
        PyErr_SetString(PyExc_ValueError, "a copied default without its copy function");
        return -1;
    }
    f->key = PyObject_GetAttrString(field, "key");
    if (f->key == NULL)
        return -1;
    if (!PyBytes_CheckExact(f->key))
        goto bad;
    return 0;
bad:
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "unexpected field attribute type");
    return -1;
}

/* An enum's tables: its members by small value (decoding), and each member of the
 * class itself with an exact int value (encoding an instance of exactly the class). */
static int
fill_enum(CNode *cnode)
{
    Py_ssize_t n = PyDict_GET_SIZE(cnode->by_value);
    cnode->small_members = PyMem_Calloc(SMALL_ENUM, sizeof(PyObject *));
    cnode->members = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof(PyObject *));
    cnode->values = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof(long long));
    if (cnode->small_members == NULL || cnode->members == NULL || cnode->values == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *member;
    while (PyDict_Next(cnode->by_value, &pos, &key, &member)) {
        if (Py_TYPE(member) != (PyTypeObject *)cnode->cls)
            continue;
        PyObject *number = PyObject_GetAttr(member, value_name);
        if (number == NULL)
            return -1;
        int overflow = 0;
        long long value = PyLong_CheckExact(number)
            ? PyLong_AsLongLongAndOverflow(number, &overflow) : 0;
        int usable = PyLong_CheckExact(number) && overflow == 0 && !PyErr_Occurred()
            && PyLong_CheckExact(key) && PyObject_RichCompareBool(key, number, Py_EQ) == 1;
        Py_DECREF(number);
        if (PyErr_Occurred())
            return -1;
        if (!usable)
            continue;
        cnode->members[cnode->nmembers] = member;
        cnode->values[cnode->nmembers] = value;
        cnode->nmembers++;
        if (value >= 0 && value < SMALL_ENUM)
            cnode->small_members[value] = member;
    }
    return 0;
}

static int
fill_node(CNode *cnode, PyObject *node, PyObject *seen)
{
    Py_ssize_t kind;
    cnode->item = -1;
    if (int_attr(node, "kind", &kind) < 0)
        return -1;
    cnode->kind = (int)kind;
    if (kind == K_LIST || kind == K_OPTIONAL) {
        if ((cnode->item = child_index(seen, node, "item")) < 0)
            return -1;
        if (kind == K_LIST && int_attr(node, "max_len", &cnode->max_len) < 0)
            return -1;
        return 0;
    }
    if (kind == K_ENUM) {
        cnode->cls = PyObject_GetAttrString(node, "cls");
        cnode->by_value = PyObject_GetAttrString(node, "by_value");
        if (cnode->cls == NULL || cnode->by_value == NULL)
            return -1;
        if (!PyType_Check(cnode->cls) || !PyDict_Check(cnode->by_value)) {
            PyErr_SetString(PyExc_TypeError, "an enum node without its class or members");
            return -1;
        }
        return fill_enum(cnode);
    }
    if (kind != K_STRUCT)
        return 0;
    PyObject *cls = PyObject_GetAttrString(node, "cls");
    if (cls == NULL)
        return -1;
    if (cls == Py_None) {
        Py_DECREF(cls);
    } else if (!PyType_Check(cls)) {
        Py_DECREF(cls);
        PyErr_SetString(PyExc_TypeError, "a struct node's class is not a class");
        return -1;
    } else {
        cnode->cls = cls;
    }
    PyObject *fields = PyObject_GetAttrString(node, "fields");
    if (fields == NULL)
        return -1;
    Py_ssize_t n = PyList_GET_SIZE(fields);
    cnode->fields = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof(CField));
    if (cnode->fields == NULL) {
        Py_DECREF(fields);
        PyErr_NoMemory();
        return -1;
    }
    cnode->nfields = n;
    for (Py_ssize_t j = 0; j < n; j++) {
        if (fill_field(&cnode->fields[j], PyList_GET_ITEM(fields, j), seen) < 0) {
            Py_DECREF(fields);
            return -1;
        }
    }
    Py_DECREF(fields);
    if (cnode->cls != NULL) {
        PyObject *setters = PyObject_GetAttrString(node, "setters");
        if (setters == NULL)
            return -1;
        int has = setters != Py_None;
        Py_DECREF(setters);
        if (has && find_slots(cnode) < 0)
            return -1;
    }
    return 0;
}

static PyObject *
prepare(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "prepare(node, fallback, decimal_type)");
        return NULL;
    }
    PyObject *seen = PyDict_New();
    PyObject *order = PyList_New(0);
    PlanObject *plan = NULL;
    if (seen == NULL || order == NULL)
        goto error;
    int result = collect(args[0], seen, order);
    if (result < 0)
        goto error;
    if (result > 0) {
        Py_DECREF(seen);
        Py_DECREF(order);
        Py_RETURN_NONE;
    }
    plan = PyObject_GC_New(PlanObject, &PlanType);
    if (plan == NULL)
        goto error;
    plan->count = 0;
    plan->nodes = NULL;
    plan->fallback = NULL;
    plan->decimal_type = NULL;
    PyObject_GC_Track(plan);
    plan->fallback = Py_NewRef(args[1]);
    plan->decimal_type = Py_NewRef(args[2]);
    Py_ssize_t n = PyList_GET_SIZE(order);
    plan->nodes = PyMem_Calloc((size_t)n, sizeof(CNode));
    if (plan->nodes == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    plan->count = n;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (fill_node(&plan->nodes[i], PyList_GET_ITEM(order, i), seen) < 0)
            goto error;
    }
    Py_DECREF(seen);
    Py_DECREF(order);
    return (PyObject *)plan;
error:
    Py_XDECREF(seen);
    Py_XDECREF(order);
    Py_XDECREF(plan);
    return NULL;
}

/* ------------------------------------------------------------------ decoding */

typedef struct {
    const unsigned char *data;
    Py_ssize_t len;
    Py_ssize_t pos;
    Py_ssize_t max_depth;
    PlanObject *plan;
} Reader;

/* The argument of a head whose additional information is ``info`` (the head's byte
 * already consumed). 0, or -1 to give up. */
static inline int
argument(Reader *r, unsigned info, uint64_t *out)
{
    if (info < 24) {
        *out = info;
        return 0;
    }
    Py_ssize_t size;
    if (info == 24)
        size = 1;
    else if (info == 25)
        size = 2;
    else if (info == 26)
        size = 4;
    else if (info == 27)
        size = 8;
    else
        return -1; /* reserved, or indefinite length */
    if (r->len - r->pos < size)
        return -1;
    const unsigned char *p = r->data + r->pos;
    uint64_t value = 0;
    for (Py_ssize_t i = 0; i < size; i++)
        value = (value << 8) | p[i];
    r->pos += size;
    *out = value;
    return 0;
}

/* An integer head: *negative set for major type 1 (the value is -1 - *magnitude). */
static inline int
read_int(Reader *r, uint64_t *magnitude, int *negative)
{
    if (r->pos >= r->len)
        return -1;
    unsigned initial = r->data[r->pos];
    unsigned major = initial >> 5;
    if (major > 1)
        return -1;
    r->pos++;
    *negative = (int)major;
    return argument(r, initial & 0x1F, magnitude);
}

static PyObject *dec(Reader *r, Py_ssize_t index, Py_ssize_t depth);

/* The decoders compare depths with max_depth - 1: every max_depth of 1 or less gives up
 * on the first container, and beyond MAX_NESTING + 2 MAX_NESTING decides first. Clamped
 * to that range, so the comparisons cannot overflow. */
static Py_ssize_t
clamp_depth(Py_ssize_t max_depth)
{
    if (max_depth < 0)
        return 0;
    return max_depth > MAX_NESTING + 2 ? MAX_NESTING + 2 : max_depth;
}

static PyObject *
int_object(uint64_t magnitude, int negative)
{
    if (!negative)
        return PyLong_FromUnsignedLongLong(magnitude);
    if (magnitude <= (uint64_t)INT64_MAX)
        return PyLong_FromLongLong(-1 - (long long)magnitude);
    /* below -2**63: -1 - magnitude in Python ints */
    PyObject *m = PyLong_FromUnsignedLongLong(magnitude);
    if (m == NULL)
        return NULL;
    PyObject *minus_one = PyLong_FromLong(-1);
    PyObject *result = minus_one == NULL ? NULL : PyNumber_Subtract(minus_one, m);
    Py_XDECREF(minus_one);
    Py_DECREF(m);
    return result;
}

static PyObject *
dec_decimal(Reader *r, Py_ssize_t depth)
{
    Py_ssize_t pos = r->pos;
    if (r->data[pos] != 0xC4 || pos + 1 >= r->len || r->data[pos + 1] != 0x82
            || depth + 1 >= r->max_depth - 1)
        return NULL;
    r->pos = pos + 2;
    uint64_t exponent, mantissa;
    int exponent_negative, mantissa_negative;
    if (read_int(r, &exponent, &exponent_negative) < 0
            || read_int(r, &mantissa, &mantissa_negative) < 0)
        return NULL;
    /* -6144 <= exponent <= 6144 and -10**19 < mantissa < 10**19 */
    if (exponent_negative ? exponent >= DECIMAL_MAX_EXPONENT : exponent > DECIMAL_MAX_EXPONENT)
        return NULL;
    if (mantissa_negative ? mantissa >= MANTISSA_LIMIT - 1 : mantissa >= MANTISSA_LIMIT)
        return NULL;
    long long e = exponent_negative ? -1 - (long long)exponent : (long long)exponent;
    unsigned long long m = mantissa_negative ? mantissa + 1 : mantissa;
    /* Decimal(mantissa).scaleb(exponent) in an exact context is the decimal whose
     * coefficient is the mantissa and whose exponent is the exponent: exactly what the
     * text "<mantissa>E<exponent>" makes (construction from text is always exact). */
    char text[48]; /* written backwards from the end: "-<digits>E-<digits>" */
    char *p = text + sizeof text;
    unsigned long long ue = e < 0 ? (unsigned long long)(-e) : (unsigned long long)e;
    do {
        *--p = (char)('0' + ue % 10);
        ue /= 10;
    } while (ue != 0);
    if (e < 0)
        *--p = '-';
    *--p = 'E';
    do {
        *--p = (char)('0' + m % 10);
        m /= 10;
    } while (m != 0);
    if (mantissa_negative)
        *--p = '-';
    PyObject *string = PyUnicode_FromStringAndSize(p, text + sizeof text - p);
    if (string == NULL)
        return NULL;
    PyObject *result = PyObject_CallOneArg(r->plan->decimal_type, string);
    Py_DECREF(string);
    return result;
}

static PyObject *
dec_struct(Reader *r, CNode *node, Py_ssize_t depth)
{
    unsigned initial = r->data[r->pos];
    if (initial >> 5 != 5 || depth >= r->max_depth - 1)
        return NULL;
    r->pos++;
    uint64_t count;
    if (argument(r, initial & 0x1F, &count) < 0)
        return NULL;
    Py_ssize_t n = node->nfields;
    PyObject *small[SMALL_FIELDS];
    PyObject **values = small;
    if (n > SMALL_FIELDS) {
        values = PyMem_Calloc((size_t)n, sizeof(PyObject *));
        if (values == NULL)
            return PyErr_NoMemory();
    } else {
        memset(small, 0, sizeof small);
    }
    PyObject *result = NULL;
    for (uint64_t i = 0; i < count; i++) {
        if (r->pos >= r->len)
            goto done;
        initial = r->data[r->pos];
        if (initial >> 5 != 0)
            goto done; /* a key other than a tag: the ordinary path decides */
        r->pos++;
        uint64_t tag;
        if (argument(r, initial & 0x1F, &tag) < 0)
            goto done;
        Py_ssize_t index = -1;
        for (Py_ssize_t j = 0; j < n; j++) {
            if (node->fields[j].tag == tag) {
                index = j;
                break;
            }
        }
        if (index < 0 || values[index] != NULL)
            goto done; /* an unknown field (skipped there) or a repeated one (refused) */
        PyObject *value = dec(r, node->fields[index].node, depth + 1);
        if (value == NULL)
            goto done;
        values[index] = value;
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        if (values[j] != NULL)
            continue;
        CField *f = &node->fields[j];
        if (f->required)
            goto done;
        PyObject *value;
        switch (f->default_kind) {
        case DEFAULT_CONST:
            value = Py_NewRef(f->default_value);
            break;
        case DEFAULT_LIST:
            value = PyList_New(0);
            break;
        case DEFAULT_DICT:
            value = PyDict_New();
            break;
        default:
            value = PyObject_CallOneArg(f->copy, f->default_value);
        }
        if (value == NULL)
            goto done;
        values[j] = value;
    }
    if (node->cls == NULL) {
        result = PyTuple_New(n);
        if (result == NULL)
            goto done;
        for (Py_ssize_t j = 0; j < n; j++) {
            PyTuple_SET_ITEM(result, j, values[j]);
            values[j] = NULL;
        }
        goto done;
    }
    if (node->by_slots) {
        PyTypeObject *type = (PyTypeObject *)node->cls;
        result = type->tp_alloc(type, 0);
        if (result == NULL)
            goto done;
        for (Py_ssize_t j = 0; j < n; j++) {
            *(PyObject **)((char *)result + node->fields[j].offset) = values[j];
            values[j] = NULL;
        }
        goto done;
    }
    {
        PyObject *kwargs = PyDict_New();
        if (kwargs == NULL)
            goto done;
        for (Py_ssize_t j = 0; j < n; j++) {
            if (PyDict_SetItem(kwargs, node->fields[j].name, values[j]) < 0) {
                Py_DECREF(kwargs);
                goto done;
            }
        }
        PyObject *empty = PyTuple_New(0);
        if (empty != NULL)
            result = PyObject_Call(node->cls, empty, kwargs);
        Py_XDECREF(empty);
        Py_DECREF(kwargs);
    }
done:
    for (Py_ssize_t j = 0; j < n; j++)
        Py_XDECREF(values[j]);
    if (values != small)
        PyMem_Free(values);
    return result;
}

static PyObject *
dec(Reader *r, Py_ssize_t index, Py_ssize_t depth)
{
    CNode *node = &r->plan->nodes[index];
    Py_ssize_t pos = r->pos;
    if (pos >= r->len || depth >= MAX_NESTING)
        return NULL;
    unsigned initial = r->data[pos];
    unsigned major = initial >> 5;
    uint64_t value;
    switch (node->kind) {
    case K_STRUCT:
        return dec_struct(r, node, depth);
    case K_STRING:
    case K_BYTES: {
        if (major != (node->kind == K_STRING ? 3u : 2u))
            return NULL;
        r->pos = pos + 1;
        if (argument(r, initial & 0x1F, &value) < 0)
            return NULL;
        if (value > (uint64_t)(r->len - r->pos))
            return NULL;
        const char *start = (const char *)r->data + r->pos;
        r->pos += (Py_ssize_t)value;
        if (node->kind == K_STRING)
            return PyUnicode_DecodeUTF8(start, (Py_ssize_t)value, NULL);
        return PyBytes_FromStringAndSize(start, (Py_ssize_t)value);
    }
    case K_INT:
    case K_ENUM: {
        if (major > 1)
            return NULL;
        r->pos = pos + 1;
        if (argument(r, initial & 0x1F, &value) < 0)
            return NULL;
        if (node->kind == K_INT) {
            if (value > (uint64_t)INT64_MAX)
                return NULL; /* outside int64 either way */
            return PyLong_FromLongLong(major ? -1 - (long long)value : (long long)value);
        }
        if (!major && value < SMALL_ENUM && node->small_members[value] != NULL)
            return Py_NewRef(node->small_members[value]);
        PyObject *number = int_object(value, (int)major);
        if (number == NULL)
            return NULL;
        PyObject *member = PyDict_GetItemWithError(node->by_value, number);
        Py_DECREF(number);
        return Py_XNewRef(member); /* not declared: the converter's open-enum path */
    }
    case K_OPTIONAL:
        if (initial == 0xF6) {
            r->pos = pos + 1;
            Py_RETURN_NONE;
        }
        return dec(r, node->item, depth);
    case K_BOOL:
        r->pos = pos + 1;
        if (initial == 0xF5)
            Py_RETURN_TRUE;
        if (initial == 0xF4)
            Py_RETURN_FALSE;
        return NULL;
    case K_DECIMAL:
        return dec_decimal(r, depth);
    case K_LIST: {
        if (major != 4 || depth >= r->max_depth - 1)
            return NULL;
        r->pos = pos + 1;
        if (argument(r, initial & 0x1F, &value) < 0)
            return NULL;
        if (value > (uint64_t)node->max_len || value > (uint64_t)r->len)
            return NULL;
        Py_ssize_t count = (Py_ssize_t)value;
        PyObject *items = PyList_New(count);
        if (items == NULL)
            return NULL;
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *item = dec(r, node->item, depth + 1);
            if (item == NULL) {
                Py_DECREF(items);
                return NULL;
            }
            PyList_SET_ITEM(items, i, item);
        }
        return items;
    }
    case K_FLOAT: {
        if (initial != 0xFB || r->len - pos < 9)
            return NULL;
        double number = PyFloat_Unpack8((const char *)r->data + pos + 1, 0);
        if (number == -1.0 && PyErr_Occurred())
            return NULL;
        r->pos = pos + 9;
        return PyFloat_FromDouble(number);
    }
    default:
        return NULL;
    }
}

/* Give up: the fallback, unless the exception is not an Exception (it propagates). */
static PyObject *
give_up(PlanObject *plan)
{
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return NULL;
        PyErr_Clear();
    }
    return Py_NewRef(plan->fallback);
}

static PyObject *
decode(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !Py_IS_TYPE(args[0], &PlanType) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "decode(plan, data: bytes, max_depth)");
        return NULL;
    }
    PlanObject *plan = (PlanObject *)args[0];
    Py_ssize_t max_depth = PyLong_AsSsize_t(args[2]);
    if (max_depth == -1 && PyErr_Occurred())
        return NULL;
    Reader reader = {
        (const unsigned char *)PyBytes_AS_STRING(args[1]), PyBytes_GET_SIZE(args[1]), 0,
        clamp_depth(max_depth), plan,
    };
    if (plan->count == 0)
        return give_up(plan);
    PyObject *result = dec(&reader, 0, 0);
    return result != NULL ? result : give_up(plan);
}

/* ------------------------------------------------------------------ encoding */

typedef struct {
    char *buf;
    Py_ssize_t len;
    Py_ssize_t cap;
    char small[512];
} Out;

static int
reserve(Out *out, Py_ssize_t more)
{
    if (out->cap - out->len >= more)
        return 0;
    if (more > PY_SSIZE_T_MAX / 2 - out->len) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t cap = out->cap * 2;
    if (cap < out->len + more)
        cap = out->len + more;
    char *buf;
    if (out->buf == out->small) {
        buf = PyMem_Malloc((size_t)cap);
        if (buf != NULL)
            memcpy(buf, out->small, (size_t)out->len);
    } else {
        buf = PyMem_Realloc(out->buf, (size_t)cap);
    }
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    out->buf = buf;
    out->cap = cap;
    return 0;
}

static inline int
put(Out *out, const char *data, Py_ssize_t size)
{
    if (reserve(out, size) < 0)
        return -1;
    memcpy(out->buf + out->len, data, (size_t)size);
    out->len += size;
    return 0;
}

static inline int
put_byte(Out *out, unsigned char byte)
{
    if (out->len >= out->cap && reserve(out, 1) < 0)
        return -1;
    out->buf[out->len++] = (char)byte;
    return 0;
}

/* The smallest head of major type ``major`` (already shifted) and argument ``value``,
 * into ``head`` (9 bytes); returns its size. */
static int
head_of(unsigned char *head, unsigned major, uint64_t value)
{
    if (value < 24) {
        head[0] = (unsigned char)(major | value);
        return 1;
    }
    if (value < 0x100) {
        head[0] = (unsigned char)(major | 24);
        head[1] = (unsigned char)value;
        return 2;
    }
    if (value < 0x10000) {
        head[0] = (unsigned char)(major | 25);
        head[1] = (unsigned char)(value >> 8);
        head[2] = (unsigned char)value;
        return 3;
    }
    if (value < 0x100000000ULL) {
        head[0] = (unsigned char)(major | 26);
        for (int i = 0; i < 4; i++)
            head[1 + i] = (unsigned char)(value >> (24 - 8 * i));
        return 5;
    }
    head[0] = (unsigned char)(major | 27);
    for (int i = 0; i < 8; i++)
        head[1 + i] = (unsigned char)(value >> (56 - 8 * i));
    return 9;
}

static int
put_head(Out *out, unsigned major, uint64_t value)
{
    unsigned char head[9];
    int size = head_of(head, major, value);
    return put(out, (const char *)head, size);
}

static inline int
put_int(Out *out, long long value)
{
    if (value >= 0)
        return put_head(out, 0x00, (uint64_t)value);
    return put_head(out, 0x20, (uint64_t)(-1 - value));
}

static int enc(Out *out, PlanObject *plan, Py_ssize_t index, PyObject *value, int depth);

/* An exact int within int64 (or give up). */
static int
int64_of(PyObject *value, long long *out)
{
    int overflow;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow != 0 || (number == -1 && PyErr_Occurred()))
        return -1;
    *out = number;
    return 0;
}

/* A finite Decimal within the fast path's limits, as tag 4 [exponent, mantissa], read
 * from its text as rpcx.codec._cbor does (anything unusual: give up). */
static int
enc_decimal(Out *out, PyObject *value)
{
    PyObject *string = PyObject_Str(value);
    if (string == NULL)
        return -1;
    Py_ssize_t size;
    const char *text = PyUnicode_AsUTF8AndSize(string, &size);
    int result = -1;
    if (text == NULL || size > DECIMAL_MAX_DIGITS || size == 0)
        goto done;
    Py_ssize_t i = 0;
    int negative = 0;
    if (text[0] == '-') {
        negative = 1;
        i = 1;
    }
    uint64_t mantissa = 0;
    int digits = 0;            /* significant digits of the coefficient */
    long long after_dot = 0;
    int seen_dot = 0, seen_digit = 0;
    for (; i < size && text[i] != 'E'; i++) {
        char c = text[i];
        if (c == '.' && !seen_dot) {
            seen_dot = 1;
            continue;
        }
        if (c < '0' || c > '9')
            goto done; /* NaN, Infinity, lower-case exponent...: the ordinary path */
        seen_digit = 1;
        if (seen_dot)
            after_dot++;
        mantissa = mantissa * 10 + (uint64_t)(c - '0'); /* at most 19 digits: no overflow */
        if (mantissa != 0)
            digits++;
    }
    if (!seen_digit)
        goto done;
    long long exponent = 0;
    if (i < size) { /* 'E', a sign, digits */
        i++;
        int exponent_negative = 0;
        if (i < size && (text[i] == '+' || text[i] == '-')) {
            exponent_negative = text[i] == '-';
            i++;
        }
        if (i >= size)
            goto done;
        for (; i < size; i++) {
            char c = text[i];
            if (c < '0' || c > '9')
                goto done;
            exponent = exponent * 10 + (c - '0');
        }
        if (exponent_negative)
            exponent = -exponent;
    }
    exponent -= after_dot;
    /* adjusted(): the exponent of the most significant digit */
    long long adjusted = exponent + (digits > 0 ? digits : 1) - 1;
    if (adjusted < -FAST_ADJUSTED || adjusted > FAST_ADJUSTED)
        goto done;
    if (put(out, "\xc4\x82", 2) < 0 || put_int(out, exponent) < 0)
        goto done;
    if (negative && mantissa != 0)
        result = put_head(out, 0x20, mantissa - 1);
    else
        result = put_head(out, 0x00, mantissa);
done:
    Py_DECREF(string);
    return result;
}

static int
enc_struct(Out *out, PlanObject *plan, CNode *node, PyObject *obj, int depth)
{
    Py_ssize_t n = node->nfields;
    int slots = 0;
    if (node->cls == NULL) {
        if (!PyTuple_Check(obj) && !PyList_Check(obj))
            return -1;
        Py_ssize_t size = PyObject_Size(obj);
        if (size != n)
            return -1;
    } else if (Py_TYPE(obj) == (PyTypeObject *)node->cls) {
        slots = node->by_slots && node->slot_reads;
    } else {
        int is = PyObject_IsInstance(obj, node->cls);
        if (is <= 0)
            return -1;
    }
    Py_ssize_t start = out->len;
    if (put_byte(out, 0xA0) < 0)
        return -1;
    uint64_t count = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        CField *f = &node->fields[j];
        PyObject *value;
        if (node->cls == NULL) {
            if (PyTuple_CheckExact(obj))
                value = Py_NewRef(PyTuple_GET_ITEM(obj, f->index));
            else if (PyList_CheckExact(obj)) {
                /* (Python code run by an earlier field may have shrunk the list) */
                if (f->index >= PyList_GET_SIZE(obj))
                    return -1;
                value = Py_NewRef(PyList_GET_ITEM(obj, f->index));
            }
            else
                value = PySequence_GetItem(obj, f->index);
        } else if (slots) {
            value = *(PyObject **)((char *)obj + f->offset);
            if (value == NULL)
                return -1; /* an unset slot: AttributeError there */
            Py_INCREF(value);
        } else {
            value = PyObject_GetAttr(obj, f->name);
        }
        if (value == NULL)
            return -1;
        if (f->optional) {
            if (value == Py_None) {
                Py_DECREF(value);
                if (f->null_if_none) {
                    if (put(out, PyBytes_AS_STRING(f->key), PyBytes_GET_SIZE(f->key)) < 0
                            || put_byte(out, 0xF6) < 0)
                        return -1;
                    count++;
                }
                continue;
            }
        } else if (f->omit_empty) {
            int truth = PyObject_IsTrue(value);
            if (truth < 0) {
                Py_DECREF(value);
                return -1;
            }
            if (!truth && ((f->omit_empty == 1 && PyList_CheckExact(value))
                           || (f->omit_empty == 2 && PyDict_CheckExact(value)))) {
                Py_DECREF(value);
                continue;
            }
        }
        int failed = put(out, PyBytes_AS_STRING(f->key), PyBytes_GET_SIZE(f->key)) < 0
            || enc(out, plan, f->inner, value, depth + 1) < 0;
        Py_DECREF(value);
        if (failed)
            return -1;
        count++;
    }
    if (count < 24) {
        out->buf[start] = (char)(0xA0 | count);
        return 0;
    }
    /* a longer head: move the fields to make room */
    unsigned char head[9];
    Py_ssize_t size = head_of(head, 0xA0, count);
    Py_ssize_t extra = size - 1;
    if (reserve(out, extra) < 0)
        return -1;
    memmove(out->buf + start + 1 + extra, out->buf + start + 1,
            (size_t)(out->len - start - 1));
    memcpy(out->buf + start, head, (size_t)size);
    out->len += extra;
    return 0;
}

static int
enc(Out *out, PlanObject *plan, Py_ssize_t index, PyObject *value, int depth)
{
    CNode *node = &plan->nodes[index];
    if (depth >= MAX_NESTING)
        return -1;
    PyTypeObject *cls = Py_TYPE(value);
    switch (node->kind) {
    case K_STRUCT:
        return enc_struct(out, plan, node, value, depth);
    case K_STRING: {
        if (cls != &PyUnicode_Type)
            return -1;
        if (PyUnicode_IS_ASCII(value)) { /* its characters are its UTF-8 */
            Py_ssize_t size = PyUnicode_GET_LENGTH(value);
            if (put_head(out, 0x60, (uint64_t)size) < 0)
                return -1;
            return put(out, (const char *)PyUnicode_DATA(value), size);
        }
        /* a temporary UTF-8 copy (PyUnicode_AsUTF8AndSize would keep one on the str) */
        PyObject *utf8 = PyUnicode_AsUTF8String(value);
        if (utf8 == NULL)
            return -1; /* lone surrogates: the ordinary path reports them */
        int failed = put_head(out, 0x60, (uint64_t)PyBytes_GET_SIZE(utf8)) < 0
            || put(out, PyBytes_AS_STRING(utf8), PyBytes_GET_SIZE(utf8)) < 0;
        Py_DECREF(utf8);
        return failed ? -1 : 0;
    }
    case K_INT: {
        long long number;
        if (cls != &PyLong_Type || int64_of(value, &number) < 0)
            return -1;
        return put_int(out, number);
    }
    case K_OPTIONAL:
        if (value == Py_None)
            return put_byte(out, 0xF6);
        return enc(out, plan, node->item, value, depth);
    case K_BOOL:
        if (value == Py_True)
            return put_byte(out, 0xF5);
        if (value == Py_False)
            return put_byte(out, 0xF4);
        return -1;
    case K_DECIMAL:
        if ((PyObject *)cls != plan->decimal_type)
            return -1;
        return enc_decimal(out, value);
    case K_ENUM: {
        if ((PyObject *)cls == node->cls) {
            for (Py_ssize_t i = 0; i < node->nmembers; i++) {
                if (node->members[i] == value)
                    return put_int(out, node->values[i]);
            }
        }
        int is = PyObject_IsInstance(value, node->cls);
        if (is <= 0)
            return -1;
        PyObject *number = PyObject_GetAttr(value, value_name);
        if (number == NULL)
            return -1;
        long long n;
        int bad = !PyLong_CheckExact(number) || int64_of(number, &n) < 0;
        Py_DECREF(number);
        if (bad)
            return -1;
        return put_int(out, n);
    }
    case K_LIST: {
        if (cls == &PyList_Type || cls == &PyTuple_Type) {
            Py_ssize_t size = Py_SIZE(value);
            if (size > node->max_len || put_head(out, 0x80, (uint64_t)size) < 0)
                return -1;
            for (Py_ssize_t i = 0; i < size; i++) {
                /* (a list may change under a Python callback: re-read its size) */
                PyObject *item;
                if (cls == &PyList_Type) {
                    if (i >= PyList_GET_SIZE(value))
                        return -1;
                    item = PyList_GET_ITEM(value, i);
                } else {
                    item = PyTuple_GET_ITEM(value, i);
                }
                Py_INCREF(item);
                int failed = enc(out, plan, node->item, item, depth + 1) < 0;
                Py_DECREF(item);
                if (failed)
                    return -1;
            }
            if (cls == &PyList_Type && PyList_GET_SIZE(value) != size)
                return -1;
            return 0;
        }
        if (!PyList_Check(value) && !PyTuple_Check(value))
            return -1;
        Py_ssize_t size = PyObject_Size(value);
        if (size < 0 || size > node->max_len || put_head(out, 0x80, (uint64_t)size) < 0)
            return -1;
        PyObject *iterator = PyObject_GetIter(value);
        if (iterator == NULL)
            return -1;
        PyObject *item;
        while ((item = PyIter_Next(iterator)) != NULL) {
            int failed = enc(out, plan, node->item, item, depth + 1) < 0;
            Py_DECREF(item);
            if (failed) {
                Py_DECREF(iterator);
                return -1;
            }
        }
        Py_DECREF(iterator);
        return PyErr_Occurred() ? -1 : 0;
    }
    case K_FLOAT: {
        if (cls != &PyFloat_Type)
            return -1;
        double number = PyFloat_AS_DOUBLE(value);
        if (number != number || number == Py_HUGE_VAL || number == -Py_HUGE_VAL)
            return -1;
        char packed[9];
        packed[0] = (char)0xFB;
        if (PyFloat_Pack8(number, packed + 1, 0) < 0)
            return -1;
        return put(out, packed, 9);
    }
    case K_BYTES:
        if (cls != &PyBytes_Type)
            return -1;
        if (put_head(out, 0x40, (uint64_t)PyBytes_GET_SIZE(value)) < 0)
            return -1;
        return put(out, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
    default:
        return -1;
    }
}

static PyObject *
encode(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !Py_IS_TYPE(args[0], &PlanType)) {
        PyErr_SetString(PyExc_TypeError, "encode(plan, value)");
        return NULL;
    }
    PlanObject *plan = (PlanObject *)args[0];
    if (plan->count == 0)
        return give_up(plan);
    Out out;
    out.buf = out.small;
    out.len = 0;
    out.cap = sizeof out.small;
    PyObject *result;
    if (enc(&out, plan, 0, args[1], 0) < 0)
        result = give_up(plan);
    else
        result = PyBytes_FromStringAndSize(out.buf, out.len);
    if (out.buf != out.small)
        PyMem_Free(out.buf);
    return result;
}

/* ------------------------------------------------- per-schema callables */

/* Decoder(plan, max_depth, max_bytes, slow): ``decoder(data)`` is ``decode(plan, data,
 * max_depth)`` for bytes of at most max_bytes, and ``slow(data)`` for everything else
 * (other types, larger inputs, the fallback): the codec's whole decode for one schema,
 * callable without a Python frame on the common path. Encoder likewise. */
typedef struct {
    PyObject_HEAD
    PlanObject *plan;
    Py_ssize_t max_depth;
    Py_ssize_t max_bytes;
    PyObject *slow;
    vectorcallfunc vectorcall;
} CallableObject;

static int
callable_traverse(CallableObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->plan);
    Py_VISIT(self->slow);
    return 0;
}

static void
callable_dealloc(CallableObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_XDECREF(self->plan);
    Py_XDECREF(self->slow);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
decoder_call(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    CallableObject *self = (CallableObject *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 1 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "a decoder takes one argument: the bytes");
        return NULL;
    }
    PyObject *data = args[0];
    if (PyBytes_CheckExact(data) && PyBytes_GET_SIZE(data) <= self->max_bytes
            && self->plan->count > 0) {
        Reader reader = {
            (const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), 0,
            self->max_depth, self->plan,
        };
        PyObject *result = dec(&reader, 0, 0);
        if (result != NULL)
            return result;
        if (PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_Exception))
                return NULL;
            PyErr_Clear();
        }
    }
    return PyObject_CallOneArg(self->slow, data);
}

static PyObject *
encoder_call(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    CallableObject *self = (CallableObject *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 1 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "an encoder takes one argument: the value");
        return NULL;
    }
    if (self->plan->count > 0) {
        Out out;
        out.buf = out.small;
        out.len = 0;
        out.cap = sizeof out.small;
        PyObject *result = NULL;
        if (enc(&out, self->plan, 0, args[0], 0) == 0) {
            if (out.len <= self->max_bytes)
                result = PyBytes_FromStringAndSize(out.buf, out.len);
        } else if (PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_Exception)) {
                if (out.buf != out.small)
                    PyMem_Free(out.buf);
                return NULL;
            }
            PyErr_Clear();
        }
        if (out.buf != out.small)
            PyMem_Free(out.buf);
        if (result != NULL)
            return result;
        if (PyErr_Occurred())
            return NULL;
    }
    /* the ordinary path: it also raises every error (a value too large included) */
    return PyObject_CallOneArg(self->slow, args[0]);
}

static PyTypeObject DecoderType;

static PyObject *
callable_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *plan, *slow;
    Py_ssize_t max_depth, max_bytes;
    static char *names[] = {"plan", "max_depth", "max_bytes", "slow", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!nnO", names, &PlanType, &plan,
                                     &max_depth, &max_bytes, &slow))
        return NULL;
    if (!PyCallable_Check(slow)) {
        PyErr_SetString(PyExc_TypeError, "slow must be callable");
        return NULL;
    }
    CallableObject *self = (CallableObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->plan = (PlanObject *)Py_NewRef(plan);
    self->max_depth = clamp_depth(max_depth);
    self->max_bytes = max_bytes;
    self->slow = Py_NewRef(slow);
    self->vectorcall = type == &DecoderType ? decoder_call : encoder_call;
    return (PyObject *)self;
}

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rpcx.codec._ctyped.Decoder",
    .tp_basicsize = sizeof(CallableObject),
    .tp_dealloc = (destructor)callable_dealloc,
    .tp_vectorcall_offset = offsetof(CallableObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_traverse = (traverseproc)callable_traverse,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_HAVE_GC,
    .tp_new = callable_new,
    .tp_doc = "Decoder(plan, max_depth, max_bytes, slow): one schema's decode.",
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rpcx.codec._ctyped.Encoder",
    .tp_basicsize = sizeof(CallableObject),
    .tp_dealloc = (destructor)callable_dealloc,
    .tp_vectorcall_offset = offsetof(CallableObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_traverse = (traverseproc)callable_traverse,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_HAVE_GC,
    .tp_new = callable_new,
    .tp_doc = "Encoder(plan, max_depth, max_bytes, slow): one schema's encode.",
};

/* ------------------------------------------------------------------ the module */

static PyMethodDef methods[] = {
    {"prepare", (PyCFunction)(void (*)(void))prepare, METH_FASTCALL,
     "prepare(node, fallback, decimal_type): the plan in C, or None when it holds a node "
     "this module does not take (maps, unions, timestamps)."},
    {"decode", (PyCFunction)(void (*)(void))decode, METH_FASTCALL,
     "decode(plan, data, max_depth): the typed value, or the plan's fallback."},
    {"encode", (PyCFunction)(void (*)(void))encode, METH_FASTCALL,
     "encode(plan, value): the CBOR bytes, or the plan's fallback."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "rpcx.codec._ctyped",
    .m_doc = "The typed CBOR path of rpcx.codec._typed, in C (optional).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__ctyped(void)
{
    if (PyType_Ready(&PlanType) < 0)
        return NULL;
    value_name = PyUnicode_InternFromString("_value_");
    if (value_name == NULL)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyType_Ready(&DecoderType) < 0 || PyType_Ready(&EncoderType) < 0
            || PyModule_AddObjectRef(module, "Plan", (PyObject *)&PlanType) < 0
            || PyModule_AddObjectRef(module, "Decoder", (PyObject *)&DecoderType) < 0
            || PyModule_AddObjectRef(module, "Encoder", (PyObject *)&EncoderType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
