"""Properties of the spec objects: equal descriptions are equal values, builders never mutate."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from envkit import Image, Service, Stack
from envkit.errors import SpecError
from envkit.oci.types import canonical_json

names = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
env_keys = st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True)
words = st.text(st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]), min_size=1)
envs = st.dictionaries(env_keys, words, max_size=5)
ports = st.dictionaries(st.integers(1, 65535), st.integers(1, 65535), max_size=4)

# A builder step as (method name, args); applied in order to a base image.
step_specs = st.one_of(
    st.tuples(st.just("run"), st.lists(words, min_size=1, max_size=3)),
    st.tuples(st.just("run"), words),
    st.tuples(st.just("env"), envs.filter(bool)),
    st.tuples(st.just("workdir"), st.from_regex(r"/[a-z]{1,8}", fullmatch=True)),
    st.tuples(st.just("expose"), st.integers(1, 65535)),
    st.tuples(st.just("cmd"), st.lists(words, max_size=3)),
    st.tuples(st.just("user"), st.integers(0, 65535)),
)


def build(steps: list[tuple[str, Any]]) -> Image:
    image = Image.from_("busybox")
    for method, arg in steps:
        image = getattr(image, method)(arg)
    return image


@settings(max_examples=60)
@given(st.lists(step_specs, max_size=6))
def test_equal_construction_gives_equal_keys(steps: list[tuple[str, Any]]) -> None:
    a, b = build(steps), build(steps)
    assert a == b
    assert hash(a) == hash(b)
    assert a.cache_key() == b.cache_key()
    assert json.loads(canonical_json(a.canonical())) == a.canonical()


@settings(max_examples=60)
@given(st.lists(step_specs, max_size=5), step_specs)
def test_builders_never_change_their_receiver(steps: list[tuple[str, Any]], extra: Any) -> None:
    base = build(steps)
    before = (base.canonical(), base.cache_key())
    child = getattr(base, extra[0])(extra[1])
    assert (base.canonical(), base.cache_key()) == before
    assert child.steps[:-1] == base.steps
    assert child.cache_key() != base.cache_key()


@settings(max_examples=60)
@given(names, envs, ports, st.randoms(use_true_random=False))
def test_mapping_order_does_not_matter(
    name: str, env: dict[str, str], port_map: dict[int | str, int | str], rnd: Any
) -> None:
    def shuffled(d: dict[Any, Any]) -> dict[Any, Any]:
        items = list(d.items())
        rnd.shuffle(items)
        return dict(items)

    try:
        a = Service(name, image="busybox", env=env, ports=port_map)
    except SpecError:
        return  # e.g. two container ports on one host port: rejected either way
    b = Service(name, image="busybox", env=shuffled(env), ports=shuffled(port_map))
    assert a == b and a.cache_key() == b.cache_key()


@settings(max_examples=40)
@given(st.lists(names, min_size=1, max_size=5, unique=True), st.randoms(use_true_random=False))
def test_stack_identity_ignores_service_order(service_names: list[str], rnd: Any) -> None:
    services = [Service(n, image="busybox") for n in service_names]
    shuffled = list(services)
    rnd.shuffle(shuffled)
    a, b = Stack("s", services=services), Stack("s", services=shuffled)
    assert a == b and hash(a) == hash(b) and a.cache_key() == b.cache_key()
