"""Fine-tune evaluation: what a run's training data does to a model (`hnmine finetune`).

sources      read a run's export (or any training file) as (anchor, positive, negatives)
evalset      the held-out BEIR split a model is measured on
arms         untrained, in-batch only, one arm per source; the training rows of each
train        fine-tune a fresh copy of the model for a fixed budget (SentenceTransformerTrainer)
retrieval    encode the evaluation set with a model and score it
metrics      exact search and nDCG@10 / Recall@100 / MRR@10, in numpy
results      the results table, the per-arm summary, a Markdown table
compare      compare_arms(): all of the above for every arm and seed
Heavy libraries (torch, datasets, sentence-transformers) are imported inside functions only.
"""
