import pytest

from app.repo.transforms import TransformCache, TransformError, check_signature

SOURCE = "FACTOR = 2\n\ndef double(request):\n    return {'out': request['x'] * FACTOR}\n"


def test_stored_source_is_compiled_once_per_version():
    cache = TransformCache()
    first = cache.compiled(SOURCE, "double", "v")
    assert first({"x": 21}) == {"out": 42}
    assert cache.compiled(SOURCE, "double", "v") is first
    assert TransformCache().compiled(SOURCE, "double", "v") is not first  # one cache per app
    changed = cache.compiled(SOURCE.replace("FACTOR = 2", "FACTOR = 3"), "double", "v")
    assert changed is not first and changed({"x": 1}) == {"out": 3}


def test_stored_source_with_a_syntax_error_is_reported():
    with pytest.raises(TransformError, match="SyntaxError"):
        TransformCache().compiled("def broken(:\n", "broken", "v")


@pytest.mark.parametrize(
    ("signature", "sources", "ok"),
    [
        ("a, b", 2, True),
        ("a, b=None, c=None", 2, True),
        ("*sources", 3, True),
        ("a", 2, False),
        ("a, b, c", 2, False),
    ],
)
def test_signature_must_take_one_argument_per_source(signature, sources, ok):
    namespace: dict = {}
    exec(f"def f({signature}):\n    return {{}}\n", namespace)  # noqa: S102
    if ok:
        check_signature(namespace["f"], sources, "f")
    else:
        with pytest.raises(TransformError, match="one argument per source"):
            check_signature(namespace["f"], sources, "f")
