"""Write a verl RL dataset (parquet) from any QA file our loaders read.

Each row carries the env's own prompt as ``prompt`` (chat messages, so with
``data.filter_overlong_prompts=True`` verl measures the prompt the env will really
send and drops rows longer than ``data.max_prompt_length`` when the dataset loads,
instead of the agent loop failing on them), ``data_source``, ``reward_model.ground_truth`` and ``extra_info``
with verl's ``index`` and the question and gold answers, which the ``deepresearch_env``
agent loop uses to pose the question to the env.

    python examples/verl/make_dataset.py --qa ../shared/data/qa/nq.jsonl --protocol search_r1 --out nq_train.parquet
"""

from __future__ import annotations

import argparse

import pyarrow as pa
import pyarrow.parquet as pq

from deepresearch.envs import PROTOCOLS, get_protocol, load_qa


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qa", required=True, help="QA file or folder (FlashRAG jsonl, HotpotQA, MuSiQue, 'demo')")
    parser.add_argument("--split", default="train")
    parser.add_argument("--protocol", default="search_r1", choices=sorted(PROTOCOLS))
    parser.add_argument("--limit", type=int)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    protocol = get_protocol(args.protocol)
    rows = [
        {
            "data_source": "deepresearch",
            "prompt": protocol.build_prompt(item.question).messages,
            "agent_name": "deepresearch_env",
            "reward_model": {"style": "rule", "ground_truth": list(item.golden_answers)},
            "extra_info": {"index": index, "id": item.id, "question": item.question, "golden_answers": list(item.golden_answers)},
        }
        for index, item in enumerate(load_qa(args.qa, split=args.split, limit=args.limit))
    ]
    pq.write_table(pa.Table.from_pylist(rows), args.out)
    print(f"{len(rows)} rows -> {args.out}")


if __name__ == "__main__":
    main()
