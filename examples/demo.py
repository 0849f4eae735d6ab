"""KayGraph in one file: a small retrieval-augmented question answerer, run on the embedded defaults.

No network and no API keys: the "LLM" and the "embeddings" are deterministic fakes, so the output
is the same on every machine. The graph shows the core's moving parts:

- a batch node (embed every document), a nested graph (retrieve = embed query >> search),
- a branch and a loop (too little context -> rewrite the question -> retrieve again),
- a node with retries (the fake LLM times out once, the second attempt answers),
- a lifecycle listener that prints each step, and the graph as Mermaid text.

If the persistence extension is installed, the same graph then runs durably on SQLite
(``.kaygraph/demo.db`` under the current directory) in a child process, which the demo kills with
SIGKILL while it waits on the LLM; a new process resumes the run, and the demo shows which steps
were restored from the checkpoint and which ran again.

    python examples/demo.py
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kaygraph import BatchNode, Graph, Node, RunListener

DOCUMENTS = [
    "KayGraph runs AI applications as graphs of nodes; each node has prep, exec and post steps.",
    "A node's exec is retried up to max_retries times, waiting between attempts.",
    "The persistence extension checkpoints every node so a crashed run resumes where it stopped.",
    "The observability extension exports OpenTelemetry traces and Prometheus metrics.",
    "Bananas are rich in potassium.",
]
QUESTION = "what happens when a run crashes?"


# -- fakes standing in for an embedding model and an LLM ---------------------------------------


def fake_embed(text: str, dims: int = 64) -> list[float]:
    """A bag-of-words hash embedding: similar wording gives similar vectors."""
    vector = [0.0] * dims
    for word in text.lower().replace("?", " ").replace(".", " ").replace(",", " ").split():
        vector[sum(map(ord, word.strip("';"))) % dims] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


class FakeLLM:
    """Answers from the context it is given; the first call with each prompt times out, like a busy
    API, so the retrying nodes have something to do."""

    def __init__(self) -> None:
        self.calls = 0
        self.seen: set[str] = set()

    def complete(self, prompt: str) -> str:
        self.calls += 1
        if prompt not in self.seen:
            self.seen.add(prompt)
            raise TimeoutError("fake LLM: upstream timed out")
        if prompt.startswith("Rewrite"):
            return "crashed run resumes where it stopped"
        context = prompt.split("Context:\n", 1)[1].split("\nQuestion:", 1)[0]
        return f"Based on the docs: {context.splitlines()[0]}"


LLM = FakeLLM()


# -- the nodes ---------------------------------------------------------------------------------


class EmbedDocuments(BatchNode):
    """Embeds each document (exec runs once per item) and stores the index."""

    def prep(self, shared: dict[str, Any]) -> list[str]:
        return shared["documents"]

    def exec(self, document: str) -> tuple[str, list[float]]:
        return document, fake_embed(document)

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: list[Any]) -> None:
        shared["index"] = exec_res


class EmbedQuery(Node):
    def prep(self, shared: dict[str, Any]) -> str:
        return shared.get("rewritten") or shared["question"]

    def exec(self, query: str) -> list[float]:
        return fake_embed(query)

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: list[float]) -> None:
        shared["query_vector"] = exec_res


class Search(Node):
    """Keeps the two most similar documents with their scores."""

    def prep(self, shared: dict[str, Any]) -> tuple[list[float], list[Any]]:
        return shared["query_vector"], shared["index"]

    def exec(self, inputs: tuple[list[float], list[Any]]) -> list[tuple[float, str]]:
        query, index = inputs
        scored = sorted(((cosine(query, vector), doc) for doc, vector in index), reverse=True)
        return [(round(score, 3), doc) for score, doc in scored[:2]]

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: list[Any]) -> None:
        shared["hits"] = exec_res


class Decide(Node):
    """The branch: answer when the best hit is good enough, otherwise rewrite the question once."""

    THRESHOLD = 0.4

    def prep(self, shared: dict[str, Any]) -> tuple[float, bool]:
        return shared["hits"][0][0], "rewritten" in shared

    def post(self, shared: dict[str, Any], prep_res: tuple[float, bool], exec_res: Any) -> str:
        best, already_rewritten = prep_res
        return "answer" if best >= self.THRESHOLD or already_rewritten else "rewrite"


class Rewrite(Node):
    """Asks the LLM for a better search query; retried when the LLM fails."""

    def __init__(self, node_id: str = "rewrite") -> None:
        super().__init__(max_retries=3, node_id=node_id)

    def prep(self, shared: dict[str, Any]) -> str:
        return shared["question"]

    def exec(self, question: str) -> str:
        return LLM.complete(f"Rewrite for search: {question}")

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: str) -> str:
        shared["rewritten"] = exec_res
        return "retry"


class Answer(Node):
    """Calls the (flaky) LLM with the retrieved context; retried up to 3 times."""

    def __init__(self, node_id: str = "answer") -> None:
        super().__init__(max_retries=3, wait=0.01, node_id=node_id)

    def prep(self, shared: dict[str, Any]) -> str:
        context = "\n".join(doc for _, doc in shared["hits"])
        return f"Context:\n{context}\nQuestion: {shared['question']}"

    def exec(self, prompt: str) -> str:
        return LLM.complete(prompt)

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: str) -> None:
        shared["answer"] = exec_res


def build_graph(answer: Node | None = None) -> Graph:
    embed_query = EmbedQuery(node_id="embed_query")
    embed_query >> Search(node_id="search")
    retrieve = Graph(start=embed_query, name="retrieve", node_id="retrieve")

    embed_docs = EmbedDocuments(node_id="embed_docs")
    decide = Decide(node_id="decide")
    rewrite = Rewrite()
    answer = answer or Answer()

    embed_docs >> retrieve >> decide
    decide - "answer" >> answer
    decide - "rewrite" >> rewrite
    rewrite - "retry" >> retrieve
    return Graph(start=embed_docs, name="rag_demo", max_steps=50)


class PrintSteps(RunListener):
    """Prints one line per completed step and per failed attempt: what the graph did, as it did it.

    Actions are shown only where they choose an edge (``decide -> rewrite``); batch nodes say how
    many items they ran instead of one line each.
    """

    def __init__(self, prefix: str = "  ") -> None:
        self.prefix = prefix
        self.items: dict[tuple[Any, ...], int] = {}

    def on_batch_item_end(self, *, path: Any, **kwargs: Any) -> None:
        key = tuple(path)
        self.items[key] = self.items.get(key, 0) + 1

    def on_node_end(
        self, *, path: Any, action: Any, duration: float, next_node_id: Any, **kwargs: Any
    ) -> None:
        items = self.items.pop(tuple(path), 0)
        detail = f"{items} items" if items else ""
        if action is not None:
            detail = f"{action!r} -> {next_node_id}" if next_node_id else f"{action!r} (end)"
        self.emit(f"{'/'.join(map(str, path)):<22} {detail:<22} {duration * 1000:6.2f} ms")

    def on_retry(self, *, path: Any, attempt: int, error: BaseException, **kwargs: Any) -> None:
        self.emit(f"{'/'.join(map(str, path)):<22} attempt {attempt} failed ({error}), retrying")

    def emit(self, line: str) -> None:
        print(f"{self.prefix}{line}", flush=True)


def run_in_memory() -> dict[str, Any]:
    graph = build_graph()
    shared: dict[str, Any] = {"documents": DOCUMENTS, "question": QUESTION}
    print(f"Question: {QUESTION!r}\n")
    print("1. The graph runs in memory. One line per step, as it completes:\n")
    graph.run(shared, listeners=[PrintSteps()])
    print(f"\n  Answer: {shared['answer']}")
    print("  Top hits:")
    for score, doc in shared["hits"]:
        print(f"    {score:.3f}  {doc}")
    print(f"  The question was rewritten to {shared.get('rewritten')!r}; LLM calls: {LLM.calls}")
    print("\n  The graph as Mermaid (paste into https://mermaid.live):\n")
    print("\n".join(f"    {line}" for line in graph.to_mermaid().splitlines()))
    return shared


# -- the durable run: a child process that really dies ------------------------------------------

RUN_ID = "demo-crash"
IN_THE_LLM_CALL = "@@demo: in the LLM call"  # the child's signal to the parent: kill me now


class HangingAnswer(Answer):
    """Answer, except that the call to the LLM never returns: the parent kills the process here."""

    def exec(self, prompt: str) -> str:
        print(IN_THE_LLM_CALL, flush=True)
        time.sleep(120)  # the parent sends SIGKILL long before this ends
        raise TimeoutError("the demo's parent did not kill this process")  # pragma: no cover


def child(mode: str, store: str) -> None:
    """The child process: start the durable run (and hang in ``answer``), or resume it."""
    import kaygraph
    from kaygraph.ext.persistence import durable

    kaygraph.add_listener(PrintSteps(prefix=f"  [pid {os.getpid()}] "))
    if mode == "crash":
        graph = build_graph(HangingAnswer())
        durable(graph, store).run({"documents": DOCUMENTS, "question": QUESTION}, run_id=RUN_ID)
    else:
        result = durable(build_graph(), store).resume(RUN_ID)
        print(f"  [pid {os.getpid()}] run {result.run_id!r}: {result.status}", flush=True)


def spawn(mode: str, store: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, __file__, "--child", mode, store],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def step_names(store: str) -> list[str]:
    """The steps checkpointed for the run, as node paths (``retrieve/search``)."""
    from kaygraph.ext.persistence import steps

    return ["/".join(map(str, record.path)) for record in steps(store, RUN_ID) if record.kind == "step"]


def counted(names: list[str]) -> str:
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    return ", ".join(f"{name} x{count}" if count > 1 else name for name, count in seen.items())


def run_durably(expected_answer: str) -> bool:
    """Runs the graph durably in a child process, SIGKILLs it mid-run, resumes in a new one."""
    try:
        from kaygraph.ext.persistence import delete_run, get_run, steps
    except ImportError as exc:
        print(f"\n2. Durable run skipped: {exc}")
        return False

    directory = Path(".kaygraph")
    directory.mkdir(exist_ok=True)
    store = f"sqlite:///{directory / 'demo.db'}"
    delete_run(store, RUN_ID, force=True)  # a clean slate when the demo runs again

    print(f"\n2. The same graph, durable: a checkpoint in SQLite ({store[10:]}) after every step.")
    print("   A child process runs it; the demo kills it with SIGKILL while it waits on the LLM.\n")
    with spawn("crash", store) as crashed:
        assert crashed.stdout is not None
        for line in crashed.stdout:
            if line.strip() == IN_THE_LLM_CALL:
                print(f"  [pid {crashed.pid}] answer                 calling the LLM ...")
                crashed.send_signal(signal.SIGKILL)
                break
            print(line, end="")
        status = crashed.wait(timeout=60)
    if status != -signal.SIGKILL:
        print(f"\n  The child process ended with status {status} instead of being killed; see above.")
        return False
    before = step_names(store)
    info = get_run(store, RUN_ID)
    print(f"\n  Killed pid {crashed.pid} with SIGKILL in the middle of 'answer' (no finally, no atexit ran).")
    print(f"  The store kept run {RUN_ID!r}: status {info.status!r}, {len(before)} steps checkpointed.")
    print("  (It still says 'running': nobody was left to mark it. Its lease died with the process,")
    print("  so a new process may take it over at once.)")

    print(f"\n3. A new process resumes run {RUN_ID!r}:\n")
    with spawn("resume", store) as resumed:
        output, _ = resumed.communicate(timeout=60)
    print(output, end="")
    if resumed.returncode != 0:
        print(f"\n  The resuming process failed with status {resumed.returncode}; see above.")
        return False
    after = step_names(store)[len(before):]
    final = steps(store, RUN_ID)[-1].state or {}
    answer = final.get("answer")
    import textwrap

    skipped = f"Skipped, restored from the checkpoint ({len(before)} steps): {counted(before)}"
    print("\n" + textwrap.fill(skipped, width=96, initial_indent="  ", subsequent_indent="    "))
    print(f"  Ran ({len(after)} step{'s' * (len(after) != 1)}): {counted(after)}")
    same = "the same answer as in memory" if answer == expected_answer else f"another answer: {answer!r}"
    print(f"  Run {RUN_ID!r} {get_run(store, RUN_ID).status}, with {same}.")
    return True


def next_steps(durable_ran: bool) -> None:
    from kaygraph import ext

    rows = [("kaygraph info", "what is installed here: extensions, plugins, where the config comes from")]
    if durable_ran:
        command = f"kaygraph runs show {RUN_ID} --store sqlite:///.kaygraph/demo.db"
        rows.append((command, "this run's history, step by step, from the store"))
    if ext.package_directory("ui") is not None:
        command = "kaygraph ui --store sqlite:///.kaygraph/demo.db"
        if Path("examples/demo.py").resolve() == Path(__file__).resolve():  # importable from here
            command += " --graphs examples.demo:build_graph"
        what = "the dashboard, http://127.0.0.1:8080: this run, its graph, each step's state"
        rows.append((command, what))
    else:
        rows.append(("kaygraph ui", "the dashboard: planned, not in this version yet"))
    rows.append(("README.md", "the 30-second tour, then one guide per extension in docs/"))
    print("\nNext steps:")
    for command, what in rows:
        print(f"  {command}\n      {what}")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3])
        return
    print("KayGraph demo: a question answerer over five documents, on fake embeddings and a fake LLM")
    print("(no network, no API keys; the fake LLM times out once per prompt, so retries show).\n")
    shared = run_in_memory()
    durable_ran = run_durably(shared["answer"])
    next_steps(durable_ran)


if __name__ == "__main__":
    main()
