"""Caveats shared by several models are said once, with the range of their numbers (`comparison.caveats`)."""

from __future__ import annotations

from detbench.comparison.caveats import grouped

NOISY = "CV {}% is above 5%: system noisy: close other programs / lock clocks"


def test_a_caveat_every_model_has_is_one_line_with_the_range_of_its_numbers():
    pairs = [(name, NOISY.format(cv)) for name, cv in
             (("baseline", "18.2"), ("ghost", "26.0"), ("eca", "21.5"), ("p2", "19.0"), ("ghost_eca", "24.4"),
              ("ghost_eca_p2", "20.1"))]
    assert grouped(pairs, 6) == [f"{NOISY.format('18.2–26.0')} (all 6 models)"]


def test_one_models_caveat_names_it_and_some_models_are_named_and_counted():
    pairs = [("baseline", NOISY.format("6.1")), ("ghost", "3 outliers beyond 1.5 IQR kept"),
             ("eca", NOISY.format("6.1")), ("eca", "worker 1: warm-up not stable")]
    assert grouped(pairs, 6) == [f"{NOISY.format('6.1')} (2 of 6 models: baseline, eca)",
                                 "ghost: 3 outliers beyond 1.5 IQR kept", "eca: worker 1: warm-up not stable"]
    many = [(f"m{k}", "GPU busy") for k in range(6)]
    assert grouped(many, 8) == ["GPU busy (6 of 8 models: m0, m1, m2, m3 and 2 more)"]
    assert grouped([("solo", NOISY.format("7.0"))], 1) == [f"solo: {NOISY.format('7.0')}"]
