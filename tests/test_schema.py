"""`to_dict` / `to_json` follow the shipped, versioned JSON Schema; `to_dataframe`."""

import dataclasses
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from _two_wrong import two_wrong_elements

import gradprobe as gp
from gradprobe.report._schema import SCHEMA_VERSION
from gradprobe.examples import deeplearning_ai as dla

jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def validator():
    schema = gp.Report.json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def reports():
    X, Y, parameters = dla.gradient_check_n_test_case()
    buggy = gp.check(*dla.loss_and_grad(X, Y, dla.backward_propagation_n), parameters)
    passing = gp.check(lambda p: float(np.sum(p**3)), lambda p: 3 * p**2, np.arange(1.0, 4.0), rtol=1e-3)
    with np.errstate(invalid="ignore"):
        inconclusive = gp.check(
            lambda p: float(np.sum(np.sqrt(p))), lambda p: 0.5 / np.sqrt(p), np.array([1e-14, 1.0])
        )
    return {"fail": buggy, "pass": passing, "inconclusive": inconclusive}


def test_the_schema_ships_inside_the_package():
    text = resources.files("gradprobe").joinpath("report.schema.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("status", ["pass", "fail", "inconclusive"])
@pytest.mark.parametrize("values", [False, True], ids=["summary", "with-values"])
def test_every_status_validates(validator, reports, status, values):
    report = reports[status]
    assert report.status == status
    data = json.loads(report.to_json(values=values))
    errors = sorted(validator.iter_errors(data), key=str)
    assert not errors, errors[0]
    assert data["status"] == status and data["ok"] is (status == "pass")
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["reproduce"] == report.reproduce
    assert ("analytic" in data["tensors"][0]) is values


def test_json_is_strict_and_non_finite_numbers_are_strings(reports):
    report = reports["inconclusive"]
    text = report.to_json()

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    data = json.loads(text, parse_constant=refuse)
    numeric = json.loads(report.to_json(values=True))["tensors"][0]["numeric"]
    assert "nan" in numeric or "inf" in numeric or "-inf" in numeric
    assert data["tensors"][0]["reason"] == "nonfinite"


def test_values_round_trip_in_row_major_order(reports):
    report = reports["fail"]
    data = report.to_dict(values=True)
    w2 = next(t for t in data["tensors"] if t["name"] == "W2")
    np.testing.assert_array_equal(np.reshape(w2["analytic"], w2["shape"]), report.tensors["W2"].analytic)
    assert w2["worst"][0]["index"] == list(report.tensors["W2"].worst[0].index)


def _schema_locations(schema):
    """Where each result dataclass of `_report` is described in the schema."""
    guarantee = schema["properties"].get("guarantee", {}).get("oneOf", [{}, {}])[1]
    return {
        "Report": schema["properties"],
        "TensorReport": schema["$defs"]["tensor"]["properties"],
        "Element": schema["$defs"]["tensor"]["properties"]["worst"]["items"]["properties"],
        "Finding": schema["$defs"]["tensor"]["properties"]["finding"]["oneOf"][1]["properties"],
        "Coverage": schema["properties"].get("coverage", {}).get("properties", {}),
        "Guarantee": guarantee.get("properties", {}),
    }


def test_the_schema_documents_every_field(validator):
    """A field added to a result class must be added to report.schema.json too (and vice versa)."""
    from gradprobe.report import _types as _report

    locations = _schema_locations(validator.schema)
    computed = {
        "Report": {"ok", "schema_version", "reproduce"},
        "TensorReport": {"ok", "diagnosis", "hint", "diagnosis_kind", "scale"},  # rendered from `finding`
        "Guarantee": {"statement"},
    }
    classes = {
        name: cls for name, cls in vars(_report).items() if dataclasses.is_dataclass(cls) and cls.__module__ in (_report.__name__, "gradprobe")
    }
    assert set(classes) <= set(locations), f"describe {set(classes) - set(locations)} in report.schema.json"
    for name, cls in classes.items():
        fields = {f.name for f in dataclasses.fields(cls)} | computed.get(name, set())
        assert set(locations[name]) == fields, name
    assert all("description" in spec for spec in validator.schema["properties"].values())


@pytest.fixture(scope="module")
def strategies():
    # A tensor with two wrong elements and one 1.5x too large throughout, in float64.
    loss, grad, params = two_wrong_elements(12, 10, bias_factor=1.5)
    return {strategy: gp.check(loss, grad, params, strategy=strategy) for strategy in ("full", "sample", "directional")}


@pytest.mark.parametrize("strategy", ["full", "sample", "directional"])
def test_worst_elements_carry_their_error_bars_for_every_strategy(validator, strategies, strategy):
    report = strategies[strategy]
    assert report.status == "fail" and report.strategy == strategy
    data = json.loads(report.to_json())
    assert not sorted(validator.iter_errors(data), key=str)
    for tensor, entry in zip(report.tensors.values(), data["tensors"]):
        assert [w["error_bar"] for w in entry["worst"]] == [e.error_bar for e in tensor.worst]
        for element in tensor.worst:
            assert element.error_bar is not None and 0 < element.error_bar < np.inf
            if tensor.error_bar is not None:  # probed whole: the element's bar is the tensor's
                assert element.error_bar == tensor.error_bar[element.index]
    b = data["tensors"][1]
    assert b["status"] == "fail" and b["worst"]
    assert all(abs(w["analytic"] - w["numeric"]) > w["error_bar"] for w in b["worst"])  # every element is wrong


@pytest.mark.parametrize("strategy", ["full", "sample", "directional"])
def test_the_json_says_everything_the_text_does(strategies, strategy):
    report = strategies[strategy]
    data = report.to_dict()
    text = str(report)
    for tensor in data["tensors"]:
        for key in ("diagnosis", "hint"):
            assert tensor[key] is None or tensor[key] in text or tensor["status"] == "pass"
    if report.guarantee is not None:
        assert data["guarantee"]["statement"] == str(report.guarantee)
        assert f"guarantee: {data['guarantee']['statement']}" in text
    else:
        assert data["guarantee"] is None and "guarantee:" not in text
    assert all(note in text for note in data["notes"]) and text.endswith(data["reproduce"])


def test_a_report_pickles_with_its_elements(strategies):
    import pickle

    report = strategies["directional"]
    again = pickle.loads(pickle.dumps(report))
    assert again == report
    assert again.tensors["W"].worst[0].error_bar == report.tensors["W"].worst[0].error_bar


def test_docs_describe_the_current_schema_version():
    docs = (Path(__file__).parents[1] / "docs" / "report.md").read_text(encoding="utf-8")
    assert f"`schema_version` {SCHEMA_VERSION}" in docs
    assert f"Version {SCHEMA_VERSION} adds" in docs


def test_options_that_are_not_json_become_their_repr():
    report = gp.check(lambda p: float(np.sum(p**2)), lambda p: 2 * p, np.ones(2))
    odd = dataclasses.replace(report, options={**report.options, "executor": object()})
    data = odd.to_dict()
    assert data["options"]["executor"].startswith("<object object")
    json.dumps(data, allow_nan=False)


def test_to_dataframe(reports):
    pd = pytest.importorskip("pandas")
    frame = reports["fail"].to_dataframe()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == ["W1", "b1", "W2", "b2", "W3", "b3"] and frame.index.name == "tensor"
    assert frame.loc["W2", "status"] == "fail" and frame.loc["W2", "diagnosis"] == "2.00x"
    assert frame.loc["b1", "scale"] == pytest.approx(4.0, rel=1e-6)
    assert frame.loc["W1", "n_pass"] == 20 and frame.loc["W2", "n_fail"] == 4
    assert frame.attrs["status"] == "fail"
