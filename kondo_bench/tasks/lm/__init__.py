"""task=lm: the gate on any Hugging Face causal language model (kondo_bench/tasks/lm/task.py).

Light on purpose: the schema (config.py) and the problems (problems.py) import without
transformers; model.py, tokenizer.py and task.py need the `lm` extra.
"""
