"""KayGraph in one file: a small retrieval-augmented question answerer, run on the embedded defaults.

No network and no API keys: the "LLM" and the "embeddings" are deterministic fakes, so the output
is the same on every machine. The graph shows the core's moving parts:

- a batch node (embed every document), a nested graph (retrieve = embed query >> search),
- a branch and a loop (too little context -> rewrite the question -> retrieve again),
- a node with retries (the fake LLM times out once, the second attempt answers),
- a lifecycle listener that prints each step, and the graph as Mermaid text.

If the persistence extension is installed, the same graph then runs durably on SQLite in a
temporary directory: a simulated crash stops it half-way and ``resume`` finishes it without
re-running the nodes that had completed.

    python examples/demo.py
"""

from __future__ import annotations

import math
import tempfile
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
    """Prints one line per completed node, batch item and retry: what the graph did."""

    def on_node_end(
        self, *, path: Any, action: Any, duration: float, next_node_id: Any, **kwargs: Any
    ) -> None:
        label = "/".join(map(str, path))
        after = f" -> {next_node_id}" if next_node_id else ""
        print(f"  done   {label:<24} action={action!r:<10} {duration * 1000:6.2f} ms{after}")

    def on_retry(self, *, path: Any, attempt: int, error: BaseException, **kwargs: Any) -> None:
        print(f"  retry  {'/'.join(map(str, path)):<24} attempt {attempt} failed: {error}")

    def on_batch_item_end(self, *, path: Any, index: int, **kwargs: Any) -> None:
        print(f"  item   {'/'.join(map(str, path))}[{index}]")


def run_in_memory() -> None:
    graph = build_graph()
    shared: dict[str, Any] = {"documents": DOCUMENTS, "question": QUESTION}
    print(f"Question: {QUESTION}\n\nSteps:")
    graph.run(shared, listeners=[PrintSteps()])
    print("\nTop hits:")
    for score, doc in shared["hits"]:
        print(f"  {score:.3f}  {doc}")
    print(f"\nAnswer: {shared['answer']}")
    print(f"Rewritten question: {shared.get('rewritten')!r}; LLM calls: {LLM.calls}")
    print("\nThe graph as Mermaid (paste into https://mermaid.live):\n")
    print(graph.to_mermaid())


class CrashingAnswer(Answer):
    """Answer, but the first durable attempt 'kills the process' before the LLM is called."""

    crashed = False

    def exec(self, prompt: str) -> str:
        if not CrashingAnswer.crashed:
            CrashingAnswer.crashed = True
            raise SystemExit("simulated crash: the process died in the middle of the run")
        return super().exec(prompt)


def run_durably() -> None:
    try:
        from kaygraph.ext.persistence import durable, steps
    except ImportError as exc:
        print(f"\nDurable run skipped: {exc}")
        return

    print("\nDurable run (persistence extension, SQLite in a temporary directory):")
    with tempfile.TemporaryDirectory() as directory:
        store = f"sqlite:///{directory}/runs.db"
        runner = durable(build_graph(CrashingAnswer()), store)
        try:
            runner.run({"documents": DOCUMENTS, "question": QUESTION}, run_id="demo-1")
        except SystemExit as crash:
            print(f"  {crash}")
        completed = [record.node_id for record in steps(store, "demo-1") if record.kind == "step"]
        print(f"  checkpointed before the crash: {', '.join(map(str, completed))}")

        # A new process would rebuild the graph from code and call resume with the run id.
        resumed = durable(build_graph(CrashingAnswer()), store).resume("demo-1")
        print(f"  resumed run {resumed.run_id!r}: status={resumed.status}, steps={resumed.steps}")
        print(f"  answer: {resumed.shared['answer']}")


def main() -> None:
    run_in_memory()
    run_durably()


if __name__ == "__main__":
    main()
