"""ONNX's trigonometric and hyperbolic functions and Mod, composed from nnc's primitives.

The IR has no sin/cos/atan primitive, so these are the Cephes single-precision
algorithms written out with `where` instead of branches:

  * Sin, Cos, Tan: x = k*pi/2 + y with k = round(2x/pi), y from a three-part pi/2
    (Cody-Waite, exact products for |k| < 2^16, so |x| below ~1e5 keeps float32
    accuracy), a minimax polynomial for sin and cos on |y| <= pi/4, and the quadrant
    k mod 4 choosing (+-)sin or (+-)cos;
  * Atan: reduced to |x| <= tan(pi/8) by atan(x) = pi/4 + atan((x-1)/(x+1)) and
    pi/2 - atan(1/x), then a minimax polynomial; Asin and Acos through it (acos as
    2*atan(sqrt((1-x)/(1+x))), exact near x = 1 where pi/2 - asin would cancel);
  * Sinh (a polynomial below |x| = 1, where (e^x - e^-x)/2 cancels), Cosh, and the
    inverse hyperbolics through log1p so they stay accurate near 0 and 1, switching
    to log(2x) for large arguments whose squares would overflow.

About 1-2 float32 ulps on float32 inputs; float64 inputs get the same float32-level
accuracy (the polynomials are float32's), within ONNX's test tolerance (rtol 1e-3).
"""
from __future__ import annotations

from .ops_math import _floor, _float

_PIO2 = (1.5703125, 4.837512969970703125e-4, 7.54978995489188216e-8)   # pi/2, split (Cephes DP1-3 * 2)
_SIN = (-1.6666654611e-1, 8.3321608736e-3, -1.9515295891e-4)
_COS = (4.166664568298827e-2, -1.388731625493765e-3, 2.443315711809948e-5)
_ATAN = (8.05374449538e-2, -1.38776856032e-1, 1.99777106478e-1, -3.33329491539e-1)
_SINH = (2.03721912945e-4, 8.33028376239e-3, 1.66667160211e-1)
_LN2 = 0.6931471805599453
_LARGE = 1e4          # above it x^2 + 1 == x^2 in float32: log(2x) is exact enough, and x^2 may overflow


def _poly(b, z, coeffs, c):
    """Horner: ((c0*z + c1)*z + c2)..."""
    acc = c(coeffs[0])
    for k in coeffs[1:]:
        acc = b.add(b.mul(acc, z), c(k))
    return acc


def _reduced(b, x, c):
    """(sin y, cos y, quadrant k mod 4 as a float) with x = k*pi/2 + y, |y| <= pi/4."""
    k = _floor(b, b.add(b.mul(x, c(0.6366197723675814)), c(0.5)), c)
    y = x
    for part in _PIO2:
        y = b.sub(y, b.mul(k, c(part)))
    z = b.mul(y, y)
    s = b.add(y, b.mul(b.mul(y, z), _poly(b, z, _SIN[::-1], c)))
    co = b.add(b.sub(c(1.0), b.mul(c(0.5), z)), b.mul(b.mul(z, z), _poly(b, z, _COS[::-1], c)))
    q = b.sub(k, b.mul(c(4.0), _floor(b, b.mul(k, c(0.25)), c)))
    return s, co, q


def _by_quadrant(b, q, values, c):
    """values[q] for q in 0..3 (a float tensor of quadrants)."""
    out = values[3]
    for k in (2, 1, 0):
        out = b.where(b.eq(q, c(float(k))), values[k], out)
    return out


def _sin(b, x, c):
    s, co, q = _reduced(b, x, c)
    return _by_quadrant(b, q, (s, co, b.neg(s), b.neg(co)), c)


def _cos(b, x, c):
    s, co, q = _reduced(b, x, c)
    return _by_quadrant(b, q, (co, b.neg(s), b.neg(co), s), c)


def _tan(b, x, c):
    s, co, q = _reduced(b, x, c)
    odd = b.eq(b.sub(q, b.mul(c(2.0), _floor(b, b.mul(q, c(0.5)), c))), c(1.0))
    return b.where(odd, b.neg(b.div(co, s)), b.div(s, co))


def _atan(b, x, c):
    a = b.abs(x)
    big, mid = b.gt(a, c(2.414213562373095)), b.gt(a, c(0.4142135623730950))
    r = b.where(big, b.div(c(-1.0), b.maximum(a, c(1.0))),
                b.where(mid, b.div(b.sub(a, c(1.0)), b.add(a, c(1.0))), a))
    base = b.where(big, c(1.5707963267948966), b.where(mid, c(0.7853981633974483), c(0.0)))
    z = b.mul(r, r)
    y = b.add(b.add(b.mul(b.mul(_poly(b, z, _ATAN, c), z), r), r), base)
    return b.where(b.lt(x, c(0.0)), b.neg(y), y)


def _asin(b, x, c):
    return _atan(b, b.div(x, b.sqrt(b.mul(b.sub(c(1.0), x), b.add(c(1.0), x)))), c)


def _acos(b, x, c):
    return b.mul(c(2.0), _atan(b, b.sqrt(b.div(b.sub(c(1.0), x), b.add(c(1.0), x))), c))


def _sinh(b, x, c):
    z = b.mul(x, x)
    small = b.add(b.mul(b.mul(_poly(b, z, _SINH, c), z), x), x)
    e = b.exp(b.abs(x))
    large = b.mul(c(0.5), b.sub(e, b.div(c(1.0), e)))
    large = b.where(b.lt(x, c(0.0)), b.neg(large), large)
    return b.where(b.lt(b.abs(x), c(1.0)), small, large)


def _cosh(b, x, c):
    e = b.exp(b.abs(x))
    return b.mul(c(0.5), b.add(e, b.div(c(1.0), e)))


def _asinh(b, x, c):
    a = b.abs(x)
    a2 = b.mul(a, a)
    near = b.log1p(b.add(a, b.div(a2, b.add(c(1.0), b.sqrt(b.add(a2, c(1.0)))))))
    y = b.where(b.gt(a, c(_LARGE)), b.add(b.log(a), c(_LN2)), near)
    return b.where(b.lt(x, c(0.0)), b.neg(y), y)


def _acosh(b, x, c):
    t = b.sub(x, c(1.0))
    near = b.log1p(b.add(t, b.sqrt(b.mul(t, b.add(t, c(2.0))))))
    return b.where(b.gt(x, c(_LARGE)), b.add(b.log(x), c(_LN2)), near)


def _atanh(b, x, c):
    a = b.abs(x)          # on |x|: 1 - |x| is exact near 1, where 1 - x at x ~ -1 would round
    y = b.mul(c(0.5), b.log1p(b.div(b.mul(c(2.0), a), b.sub(c(1.0), a))))
    return b.where(b.lt(x, c(0.0)), b.neg(y), y)


def _float_op(fn):
    def lower(cx):
        x = _float(cx, cx.x(0), cx.node.op_type)
        return fn(cx.b, x, lambda v: cx.b.scalar(v, cx.b.dtype(x)))
    return lower


def mod(cx):
    """fmod=0: the remainder with the divisor's sign (Python's %, numpy.mod); fmod=1: C's
    fmod (the dividend's sign), as a - d*q with q the floored or truncated quotient, computed
    in float64: exact for int32 and float32 operands; float64 ones are off by a multiple of d
    when a/d rounds to an integer it is not, and int64 ones beyond 2^53. A finite dividend over an
    infinite divisor is the dividend (or, for fmod=0 and opposite signs, the divisor)."""
    b = cx.b
    a, d = cx.x(0), cx.x(1)
    dt = b.dtype(a)
    fmod = cx.attr("fmod", 0)
    if dt == "bool":
        raise cx.fail("Mod needs numbers, got bool")
    af, df = (v if dt == "f64" else b.cast(v, dtype="f64") for v in (a, d))
    c = lambda v: b.scalar(v, "f64")  # noqa: E731
    q = b.div(af, df)
    if fmod:
        t = _floor(b, b.abs(q), c)
        q = b.where(b.lt(q, c(0.0)), b.neg(t), t)
    else:
        q = _floor(b, q, c)
    r = b.sub(af, b.mul(df, q))
    if dt in ("f32", "f64"):
        finite_a = b.eq(b.sub(af, af), c(0.0))                            # inf - inf and nan are nan
        inf_d = b.where(b.eq(df, df), b.ne(b.sub(df, df), c(0.0)), b.eq(df, c(0.0)))   # nan: false
        keep = b.where(b.lt(b.mul(af, df), c(0.0)), df, af) if not fmod else af
        r = b.where(finite_a, b.where(inf_d, keep, r), r)
    return r if dt == "f64" else b.cast(r, dtype=dt)


OPS = {
    "Sin": _float_op(_sin), "Cos": _float_op(_cos), "Tan": _float_op(_tan),
    "Asin": _float_op(_asin), "Acos": _float_op(_acos), "Atan": _float_op(_atan),
    "Sinh": _float_op(_sinh), "Cosh": _float_op(_cosh),
    "Asinh": _float_op(_asinh), "Acosh": _float_op(_acosh), "Atanh": _float_op(_atanh),
    "Mod": mod,
}
