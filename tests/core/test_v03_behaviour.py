"""KayGraph 0.3 behaviour the core keeps: node.logger and step logs, on_error suppression,
positional constructors, config= propagation, duplicate ids, `with graph:`."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import warnings

import pytest

from kaygraph import (
    AsyncGraph,
    AsyncNode,
    BaseNode,
    Config,
    Graph,
    GraphDefinitionError,
    MetricsNode,
    Node,
    ParallelBatchNode,
)


class Step(Node):
    def post(self, shared, prep_res, exec_res):
        shared.setdefault("ran", []).append(self.node_id)


def test_node_logger_is_named_after_the_class_and_created_lazily():
    assert Step().logger is logging.getLogger("Step")
    assert Graph().logger.name == "Graph"
    node = Step()
    node.logger = logging.getLogger("custom")  # 0.3 programs may replace it
    assert node.logger.name == "custom"
    probe = "import sys, kaygraph; n = kaygraph.Node(); print('logging' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_step_records_at_0_3_levels(caplog):
    class Flaky(Node):
        def exec(self, prep_res):
            if self.cur_retry == 0:
                raise ConnectionError("timeout")
            return "ok"

    flaky = Flaky(max_retries=2, node_id="flaky")
    flaky >> Step(node_id="after")
    with caplog.at_level(logging.INFO):
        Graph(start=flaky).run({})
    records = [(record.name, record.levelname, record.getMessage()) for record in caplog.records]
    assert ("Graph", "INFO", "Graph transition to node: flaky (Flaky)") in records
    assert ("Flaky", "INFO", "Node flaky: Starting execution with params: {}") in records
    assert ("Flaky", "WARNING", "Node flaky: Execution failed on attempt 1: timeout") in records
    assert ("Flaky", "INFO", "Node flaky: Retrying execution (attempt 2/2)...") in records
    completed = [message for _, _, message in records if message.startswith("Node after: Completed in")]
    assert completed and completed[0].endswith("with action: 'None'")
    assert records[-1] == ("Graph", "INFO", "Graph Graph: Execution completed with final action: 'None'")


def test_failures_are_logged_at_error_and_nothing_below_warning_by_default(caplog):
    class Boom(Node):
        def exec(self, prep_res):
            raise ValueError("bad input")

    caplog.set_level(logging.WARNING)
    with pytest.raises(ValueError):
        Graph(start=Boom(node_id="boom")).run({})
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "Node boom: Execution failed on attempt 1: bad input"),
        ("ERROR", "Node boom: Failed: bad input"),
    ]


def test_info_records_are_never_formatted_when_dropped():
    formatted = []

    class Loud:
        def __repr__(self):
            formatted.append(1)
            return "loud"

    class Node1(Node):
        pass

    graph = Graph(start=Node1())
    graph.set_params({"x": Loud()})
    logging.getLogger().setLevel(logging.WARNING)
    graph.run({})
    assert formatted == []


@pytest.mark.parametrize("async_graph", [False, True])
def test_on_error_returning_true_suppresses_and_the_graph_goes_on(async_graph, caplog):
    seen = []

    class Risky(AsyncNode if async_graph else Node):
        def on_error(self, shared, error):
            seen.append(type(error).__name__)
            return True

    if async_graph:

        async def exec_async(self, prep_res):
            raise KeyError("missing")

        Risky.exec_async = exec_async
    else:

        def exec(self, prep_res):
            raise KeyError("missing")

        Risky.exec = exec
    risky = Risky(node_id="risky")
    risky >> Step(node_id="next")
    shared: dict = {}
    with caplog.at_level(logging.INFO):
        if async_graph:
            action = asyncio.run(AsyncGraph(start=risky).run_async(shared))
        else:
            action = Graph(start=risky).run(shared)
    assert seen == ["KeyError"] and shared["ran"] == ["next"] and action is None
    assert any(r.getMessage() == "Node risky: Error suppressed by on_error hook" for r in caplog.records)


def test_on_error_returning_false_or_none_propagates():
    class Strict(Node):
        def exec(self, prep_res):
            raise KeyError("missing")

        def on_error(self, shared, error):
            return False

    with pytest.raises(KeyError):
        Graph(start=Strict()).run({})


def test_positional_constructors_as_in_0_3():
    config = Config(model="small")
    base = BaseNode("b", config)
    assert (base.node_id, base.config) == ("b", config)
    node = Node(3, 0.5, "n", config)
    assert (node.max_retries, node.wait, node.node_id, node.config) == (3, 0.5, "n", config)
    pool = ParallelBatchNode(4, 2, 0.1, "p")
    assert (pool.max_workers, pool.max_retries, pool.wait, pool.node_id) == (4, 2, 0.1, "p")
    graph = Graph(node, config)
    assert graph.start_node is node and graph.config is config


def test_cooperative_keyword_pass_through_in_multiple_inheritance():
    class Tagged:
        def __init__(self, *args, tag=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.tag = tag

    class TaggedMetrics(MetricsNode, Tagged):
        pass

    node = TaggedMetrics(True, 2, node_id="m", tag="t")
    assert (node.max_retries, node.node_id, node.tag) == (2, "m", "t")
    typo = r"^Node\(\) got an unexpected keyword argument 'max_retry'\. Did you mean 'max_retries'\?$"
    with pytest.raises(TypeError, match=typo):
        Node(max_retry=3)


def test_config_is_propagated_to_nodes_without_one():
    seen = {}

    class Reader(Node):
        def exec(self, prep_res):
            seen[self.node_id] = self.config.get("model", "default")

    own = Config(model="own")
    first, second = Reader(node_id="a"), Reader(node_id="b", config=own)
    inner = Graph(start=Reader(node_id="c"))
    first >> second >> inner
    Graph(start=first, config=Config(model="shared")).run({})
    assert seen == {"a": "shared", "b": "own", "c": "shared"}
    seen.clear()
    Graph(start=Reader(node_id="alone")).run({})
    assert seen == {"alone": "default"}  # an empty Config, so .get works without any config
    anything = {"model": "dict"}  # whatever object is passed is stored
    assert Node(config=anything).config is anything


def test_duplicate_ids_warn_in_a_plain_run_and_fail_where_ids_must_be_unique():
    first = Step(node_id="same")
    first >> Step(node_id="same")
    graph = Graph(start=first)
    shared: dict = {}
    with pytest.warns(UserWarning, match="graph 'Graph' has two nodes with node_id 'same': the run goes on"):
        graph.run(shared)
    assert shared["ran"] == ["same", "same"]
    with pytest.raises(GraphDefinitionError, match="two nodes with node_id 'same'; node ids must be unique"):
        graph.require_unique_ids()
    with pytest.raises(GraphDefinitionError):
        graph.nodes()
    unique = Graph(start=Step(node_id="x"))
    unique.require_unique_ids()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unique.run({})


def test_duplicates_inside_a_nested_graph_are_found_from_the_top():
    inner_start = Step(node_id="dup")
    inner_start >> Step(node_id="dup")
    top = Graph(start=Graph(start=inner_start, name="inner"))
    with pytest.raises(GraphDefinitionError, match="graph 'inner' has two nodes"):
        top.require_unique_ids()


def test_without_logging_configured_nothing_reaches_stderr():
    script = (
        "import kaygraph\n"
        "class Flaky(kaygraph.Node):\n"
        "    def exec(self, prep_res):\n"
        "        if self.cur_retry == 0:\n"
        "            raise ConnectionError('timeout')\n"
        "kaygraph.Graph(start=Flaky(max_retries=2)).run({})\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stderr == ""


def test_a_retry_wait_and_the_last_attempt_are_logged(caplog):
    class Stubborn(Node):
        def exec(self, prep_res):
            raise ConnectionError(f"attempt {self.cur_retry}")

        def exec_fallback(self, prep_res, exc):
            return "fallback"

    stubborn = Stubborn(max_retries=3, wait=0.001, node_id="stubborn")
    with caplog.at_level(logging.INFO):
        Graph(start=stubborn).run({})
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "Stubborn"]
    waits = [message for _, message in records if "Waiting" in message]
    assert waits == ["Node stubborn: Waiting for 0.001 seconds before next retry."] * 2
    exhausted = [index for index, (level, _) in enumerate(records) if level == "ERROR"]
    failed = [index for index, (level, _) in enumerate(records) if level == "WARNING"]
    assert records[exhausted[0]][1] == "Node stubborn: Max retries reached. Calling fallback."
    assert len(exhausted) == 1 and exhausted[0] == failed[-1] + 1  # right after the third failure
