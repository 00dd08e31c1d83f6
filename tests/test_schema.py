"""Schemathesis against `ruvon serve`'s own /openapi.json (stand-in, CPU): generated requests, valid and not, to every operation;
no response may be a 5xx, and every response must match what the schema documents (a 400 in OpenAI's error shape included).
`model` is pinned to the served name so that generated requests reach generation, not only the 404 for an unknown model."""
import httpx
import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

MODEL = "standin"


@pytest.fixture(scope="module")
def api(standin_2l, ruvon_server):
    # a small batch and a deadline bound the work one generated request can ask for (n, max_tokens); 400s and 408s are answers, not faults
    _, url = ruvon_server(standin_2l, "--kv-cache-memory", str(32 << 20), "--max-num-seqs", "4", "--request-timeout", "5")
    return schemathesis.openapi.from_url(f"{url}/openapi.json")


def pinned(case) -> None:
    "The served model's name wherever a case names a model (else nearly every case is the same 404)."
    if isinstance(case.body, dict) and "model" in case.body: case.body["model"] = MODEL
    if case.path_parameters and "model_id" in case.path_parameters: case.path_parameters["model_id"] = MODEL


def test_openapi_conformance(api):
    "Every operation, a bounded number of generated cases each (schemathesis's pytest plugin fails under pytest 9, so hypothesis drives it)."
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 8
    takes_input = lambda op: op.method.upper() == "POST"  # a body to make invalid (a GET has none; any string is a path)
    for operation, mode in ((op, mode) for op in operations for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                            if mode == GenerationMode.POSITIVE or takes_input(op)):
        @given(case=operation.as_strategy(mode))  # schema-valid requests, then invalid ones
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
        def conforms(case):
            pinned(case)
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance], timeout=60)
        conforms()


def test_schema_documents_the_openai_routes(api):
    "The fuzzed schema is the served one: the OpenAI routes with their bodies, and the 400 they answer."
    paths = api.raw_schema["paths"]
    for path in ("/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize"):
        assert "400" in paths[path]["post"]["responses"] and "requestBody" in paths[path]["post"], path
