"""The data pipeline: files -> conversations (map_fns) -> templated text -> masked tokens -> packed batches."""
