"""The evaluation settings of Search-R1, ReSearch and DeepResearcher, pinned, with their published numbers.

Results on "the Search-R1 suite" differ across papers mostly because the corpus, the
retriever, top-k, the turn budget and the answer metric differ (Search-R1 issue #40).
A suite fixes all of them as the paper evaluated, and its table prints the paper's
numbers beside ours with every setting underneath, marked where this run differs.
Every value below names where it was read; ``docs/evaluation.md`` repeats them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SuiteDataset:
    name: str  # our standard dataset name (``deepresearch eval --dataset NAME``)
    split: str
    limit: int | None = None  # questions evaluated (None: the whole split)
    column: str = ""  # the paper's column heading

    @property
    def heading(self) -> str:
        return self.column or self.name


@dataclass(frozen=True)
class Setting:
    """One pinned setting: its value as the paper ran it and where that is written."""

    name: str
    paper: str
    source: str


@dataclass(frozen=True)
class PublishedRow:
    method: str
    # dataset name -> metric -> value in the paper's own scale (fraction or percent)
    values: dict[str, dict[str, float]]
    note: str = ""


@dataclass(frozen=True)
class EvalSuite:
    name: str
    paper: str
    table_source: str
    env_id: str
    protocol: str
    reward: str
    datasets: tuple[SuiteDataset, ...]
    metrics: tuple[str, ...]  # our metric keys, in the paper's column order: em, f1, judge
    metric_headings: dict[str, str]
    percent: bool  # the paper prints percentages (else fractions)
    top_k: int
    max_turns: int
    max_new_tokens: int  # per policy turn
    max_response_tokens: int  # whole episode after the prompt
    settings: tuple[Setting, ...]
    published: tuple[PublishedRow, ...]
    env_kwargs: dict[str, object] = field(default_factory=dict)
    average: bool = False  # the paper's table has an average column

    def dataset(self, name: str) -> SuiteDataset:
        for dataset in self.datasets:
            if dataset.name == name:
                return dataset
        raise KeyError(f"suite {self.name!r} has no dataset {name!r}; its datasets: {[d.name for d in self.datasets]}")


SEARCH_R1_REPO = "github.com/PeterGriffinJin/Search-R1"
RESEARCH_REPO = "github.com/Agent-RL/ReCall (branch re-search)"
DEEPRESEARCHER_REPO = "github.com/GAIR-NLP/DeepResearcher"

SEARCH_R1 = EvalSuite(
    name="search-r1",
    paper="Search-R1 (Jin et al., arXiv 2503.09516)",
    table_source="arXiv 2503.09516 v3+ (COLM 2025), Table 2, exact match; EM as fractions",
    env_id="DeepResearch-Wiki-v0",
    protocol="search_r1",
    reward="search_r1",
    datasets=(
        SuiteDataset("nq", "test", column="NQ"),
        SuiteDataset("triviaqa", "test", column="TriviaQA"),
        SuiteDataset("popqa", "test", column="PopQA"),
        SuiteDataset("hotpotqa", "dev", column="HotpotQA"),
        SuiteDataset("2wiki", "dev", column="2wiki"),
        SuiteDataset("musique", "dev", column="Musique"),
        SuiteDataset("bamboogle", "test", column="Bamboogle"),
    ),
    metrics=("em",),
    metric_headings={"em": "EM"},
    percent=False,
    top_k=3,
    max_turns=5,
    max_new_tokens=500,
    max_response_tokens=4096,
    average=True,
    settings=(
        Setting("corpus", "wiki-18: Dec-2018 Wikipedia in 100-word passages (DPR), 21M passages",
                f"paper §4 'Experimental Setup'; {SEARCH_R1_REPO} retrieval_launch.sh (wiki-18.jsonl)"),
        Setting("retriever", "dense E5 (intfloat/e5-base-v2), flat inner-product index",
                f"{SEARCH_R1_REPO} retrieval_launch.sh (e5_Flat.index, --retriever_model intfloat/e5-base-v2)"),
        Setting("top-k", "3", f"paper §4 ('the number of retrieved passages to three'); {SEARCH_R1_REPO} scripts/nq_hotpotqa/evaluate.sh retriever.topk=3"),
        Setting("turns", "5: up to 4 search rounds, then one rollout without search",
                f"{SEARCH_R1_REPO} evaluate.sh max_turns=4; search_r1/llm_agent/generation.py run_llm_loop (final rollout, do_search=False)"),
        Setting("tokens", "500 per turn; observations cut at 500 tokens",
                f"{SEARCH_R1_REPO} evaluate.sh data.max_response_length=500, data.max_obs_length=500"),
        Setting("decoding", "greedy", f"{SEARCH_R1_REPO} verl/trainer/ppo/ray_trainer.py _validate (do_sample=False)"),
        Setting("metric", "EM of the last <answer> (FlashRAG normalisation)", "paper §4; our search_r1 preset equals its code on every input"),
        Setting("splits", "test where FlashRAG has one, else dev", f"{SEARCH_R1_REPO} scripts/data_process/qa_search_test_merge.py"),
        Setting("prompt", "Search-R1's base prompt (make_prefix)", f"{SEARCH_R1_REPO} qa_search_test_merge.py; ours by default, "
                "pass env_kwargs prompt_template for theirs"),
    ),
    published=(
        PublishedRow("RAG (Qwen2.5-7B)", {"nq": {"em": 0.349}, "triviaqa": {"em": 0.585}, "popqa": {"em": 0.392}, "hotpotqa": {"em": 0.299},
                                          "2wiki": {"em": 0.235}, "musique": {"em": 0.058}, "bamboogle": {"em": 0.208}}),
        PublishedRow("Search-R1-base (Qwen2.5-7B)", {"nq": {"em": 0.480}, "triviaqa": {"em": 0.638}, "popqa": {"em": 0.457},
                                                     "hotpotqa": {"em": 0.433}, "2wiki": {"em": 0.382}, "musique": {"em": 0.196},
                                                     "bamboogle": {"em": 0.432}}),
        PublishedRow("Search-R1-instruct (Qwen2.5-7B)", {"nq": {"em": 0.393}, "triviaqa": {"em": 0.610}, "popqa": {"em": 0.397},
                                                         "hotpotqa": {"em": 0.370}, "2wiki": {"em": 0.414}, "musique": {"em": 0.146},
                                                         "bamboogle": {"em": 0.368}}),
        PublishedRow("Search-R1-base (Qwen2.5-3B)", {"nq": {"em": 0.406}, "triviaqa": {"em": 0.587}, "popqa": {"em": 0.435},
                                                     "hotpotqa": {"em": 0.284}, "2wiki": {"em": 0.273}, "musique": {"em": 0.049},
                                                     "bamboogle": {"em": 0.088}}),
        PublishedRow("Search-R1-instruct (Qwen2.5-3B)", {"nq": {"em": 0.341}, "triviaqa": {"em": 0.545}, "popqa": {"em": 0.378},
                                                         "hotpotqa": {"em": 0.324}, "2wiki": {"em": 0.319}, "musique": {"em": 0.103},
                                                         "bamboogle": {"em": 0.264}}),
    ),
)

RESEARCH = EvalSuite(
    name="research",
    paper="ReSearch (Chen et al., arXiv 2503.19470)",
    table_source="arXiv 2503.19470 (NeurIPS 2025 version), Table 2: EM and LLM-as-a-judge (LJ), percent",
    env_id="DeepResearch-Wiki-v0",
    protocol="research",
    reward="research",
    datasets=(
        SuiteDataset("hotpotqa", "dev", column="HotpotQA"),
        SuiteDataset("2wiki", "dev", column="2Wiki"),
        SuiteDataset("musique", "dev", column="MuSiQue"),
        SuiteDataset("bamboogle", "test", column="Bamboogle"),
    ),
    metrics=("em", "judge"),
    metric_headings={"em": "EM", "judge": "LJ"},
    percent=True,
    top_k=5,
    max_turns=32,
    max_new_tokens=8192,
    max_response_tokens=8192,
    settings=(
        Setting("corpus", "wiki-18: Dec-2018 Wikipedia (FlashRAG's preprocessed corpus and index)", "paper §3.1 'Implementation Details'"),
        Setting("retriever", "dense E5-base-v2", "paper §3.1"),
        Setting("top-k", "5", f"paper §3.1; {RESEARCH_REPO} scripts/evaluation/eval_config.yaml retrieval_topk: 5"),
        Setting("turns", "no limit: the model searches until it answers or the context is spent",
                f"{RESEARCH_REPO} src/flashrag/pipeline/active_pipeline.py ReSearchPipeline.run_item"),
        Setting("tokens", "8,192 in all, prompt included", f"{RESEARCH_REPO} eval_config.yaml generator_max_input_len: 8192, max_tokens: 8192"),
        Setting("decoding", "greedy", f"{RESEARCH_REPO} eval_config.yaml generation_params do_sample: False"),
        Setting("metric", "EM of the \\boxed{} answer, and an LLM judge (gpt-4o-mini, their prompt)",
                f"paper §3.1 'Evaluation Metrics'; {RESEARCH_REPO} scripts/evaluation/llm_judge.py"),
        Setting("splits", "full dev sets of HotpotQA (7,405), 2Wiki (12,576), MuSiQue (2,417); Bamboogle test (125)", "paper §3.1 'Benchmarks'"),
        Setting("prompt", "ReSearch's own templates (base and chat)", "our research protocol ships them verbatim"),
    ),
    published=(
        PublishedRow("Naive RAG (Qwen2.5-7B-Instruct)", {"hotpotqa": {"em": 31.90, "judge": 49.59}, "2wiki": {"em": 25.78, "judge": 29.52},
                                                         "musique": {"em": 6.21, "judge": 12.78}, "bamboogle": {"em": 20.80, "judge": 32.00}}),
        PublishedRow("ReSearch-Qwen-7B", {"hotpotqa": {"em": 40.57, "judge": 60.26}, "2wiki": {"em": 44.67, "judge": 50.06},
                                          "musique": {"em": 21.68, "judge": 32.19}, "bamboogle": {"em": 43.20, "judge": 54.40}}),
        PublishedRow("ReSearch-Qwen-7B-Instruct", {"hotpotqa": {"em": 43.52, "judge": 63.62}, "2wiki": {"em": 47.59, "judge": 54.22},
                                                   "musique": {"em": 22.30, "judge": 33.43}, "bamboogle": {"em": 42.40, "judge": 54.40}}),
        PublishedRow("ReSearch-Qwen-32B", {"hotpotqa": {"em": 42.77, "judge": 64.27}, "2wiki": {"em": 38.52, "judge": 45.59},
                                           "musique": {"em": 26.40, "judge": 37.57}, "bamboogle": {"em": 54.40, "judge": 66.40}}),
        PublishedRow("ReSearch-Qwen-32B-Instruct", {"hotpotqa": {"em": 46.73, "judge": 67.70}, "2wiki": {"em": 44.90, "judge": 50.30},
                                                    "musique": {"em": 26.40, "judge": 38.56}, "bamboogle": {"em": 56.80, "judge": 67.20}}),
    ),
)

DEEPRESEARCHER = EvalSuite(
    name="deepresearcher",
    paper="DeepResearcher (Zheng et al., arXiv 2504.03160)",
    table_source=f"arXiv 2504.03160, Tables 1 and 2 (F1 and model-based evaluation MBE, percent); the PDF is {DEEPRESEARCHER_REPO} resources/DeepResearcher.pdf",
    env_id="DeepResearch-Web-v0",
    protocol="deepresearcher",
    reward="deepresearcher",
    datasets=(
        SuiteDataset("nq", "dev", 512, "NQ"),
        SuiteDataset("triviaqa", "dev", 512, "TQ"),
        SuiteDataset("hotpotqa", "dev", 512, "HotpotQA"),
        SuiteDataset("2wiki", "dev", 512, "2Wiki"),
        SuiteDataset("musique", "dev", 512, "Musique"),
        SuiteDataset("bamboogle", "test", None, "Bamboogle"),
        SuiteDataset("popqa", "test", 512, "PopQA"),
    ),
    metrics=("f1", "judge"),
    metric_headings={"f1": "F1", "judge": "MBE"},
    percent=True,
    top_k=10,
    max_turns=11,
    max_new_tokens=2000,
    max_response_tokens=30000,
    settings=(
        Setting("corpus", "the live web (Google through Serper), pages read by a reading agent (qwen-plus)",
                f"paper §3.1; {DEEPRESEARCHER_REPO} scrl/handler/config.yaml (search_engine, reading_agent_model)"),
        Setting("retriever", "web search results: title, URL and snippet", "paper §3.1 'Web Search Tool'"),
        Setting("top-k", "10", f"paper §3.1 ('a fixed top-k (e.g., 10)'); {DEEPRESEARCHER_REPO} scrl/handler/config.yaml search_top_k: 10"),
        Setting("turns", "11: up to 10 tool calls, then the final answer", f"paper §5.1.1; {DEEPRESEARCHER_REPO} evaluate.sh max_turns=10"),
        Setting("tokens", "2,000 per response, 32,768 context", f"{DEEPRESEARCHER_REPO} evaluate.sh data.max_response_length=2000, max_model_len=32768"),
        Setting("decoding", "greedy", f"{DEEPRESEARCHER_REPO} verl/trainer/ppo/ray_trainer.py _validate (do_sample=False)"),
        Setting("metric", "word-level F1 after lower-casing and removing punctuation, and MBE: gpt-4o-mini judging correct/incorrect",
                "paper §5.2.3"),
        Setting("splits", "512 random questions of each dev set (NQ, TQ, HotpotQA, 2Wiki, MuSiQue, PopQA), all 125 of Bamboogle",
                f"paper §5.2.1; their sample is {DEEPRESEARCHER_REPO} data/test.parquet (FlashRAG's PopQA has only a test split; "
                "here the first 512 of each split unless you pass their questions)"),
        Setting("prompt", "DeepResearcher's system prompt with the date", f"{DEEPRESEARCHER_REPO} scrl/llm_agent/generation.py; ours by default, "
                "pass env_kwargs prompt_template for theirs"),
    ),
    published=(
        PublishedRow("Search-r1-base (local RAG)", {"nq": {"f1": 45.4, "judge": 60.0}, "triviaqa": {"f1": 71.9, "judge": 76.2},
                                                    "hotpotqa": {"f1": 55.9, "judge": 63.0}, "2wiki": {"f1": 44.6, "judge": 47.9},
                                                    "musique": {"f1": 26.7, "judge": 27.5}, "bamboogle": {"f1": 56.5, "judge": 57.6},
                                                    "popqa": {"f1": 43.2, "judge": 47.0}}),
        PublishedRow("Search-r1-instruct (local RAG)", {"nq": {"f1": 33.1, "judge": 49.6}, "triviaqa": {"f1": 44.7, "judge": 49.2},
                                                        "hotpotqa": {"f1": 45.7, "judge": 52.5}, "2wiki": {"f1": 43.4, "judge": 48.8},
                                                        "musique": {"f1": 26.5, "judge": 28.3}, "bamboogle": {"f1": 45.0, "judge": 47.2},
                                                        "popqa": {"f1": 43.0, "judge": 44.5}}),
        PublishedRow("R1-Searcher (web search)", {"nq": {"f1": 35.4, "judge": 52.3}, "triviaqa": {"f1": 73.1, "judge": 79.1},
                                                  "hotpotqa": {"f1": 44.8, "judge": 53.1}, "2wiki": {"f1": 59.4, "judge": 65.8},
                                                  "musique": {"f1": 22.8, "judge": 25.6}, "bamboogle": {"f1": 64.8, "judge": 65.6},
                                                  "popqa": {"f1": 42.7, "judge": 43.4}}),
        PublishedRow("DeepResearcher (web search)", {"nq": {"f1": 39.6, "judge": 61.9}, "triviaqa": {"f1": 78.4, "judge": 85.0},
                                                     "hotpotqa": {"f1": 52.8, "judge": 64.3}, "2wiki": {"f1": 59.7, "judge": 66.6},
                                                     "musique": {"f1": 27.1, "judge": 29.3}, "bamboogle": {"f1": 71.0, "judge": 72.8},
                                                     "popqa": {"f1": 48.5, "judge": 52.7}}),
    ),
)

SUITES: dict[str, EvalSuite] = {suite.name: suite for suite in (SEARCH_R1, RESEARCH, DEEPRESEARCHER)}


def get_suite(name: str) -> EvalSuite:
    try:
        return SUITES[name]
    except KeyError:
        raise ValueError(f"unknown suite {name!r}; choose one of {sorted(SUITES)}") from None
