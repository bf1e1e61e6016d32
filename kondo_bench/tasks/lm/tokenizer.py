"""Tokenizers: a character-level one built in code for the built-in problems, or a local folder's.

The built-in one is a real `PreTrainedTokenizerFast` (one token per character, `<pad>` and
`<eos>` specials), so TRL's GRPOTrainer can use the very same tokenizer in the side-by-side
benchmark; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import UserError

ALPHABET = "0123456789+=,"  # every character the built-in problems write
PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"


def char_tokenizer(alphabet: str = ALPHABET):
    """One token per character of `alphabet`; ids 0, 1, 2 are <pad>, <eos>, <unk>. Decoding joins
    the characters back without spaces, so decode(encode(s)) == s for any s over the alphabet."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {PAD: 0, EOS: 1, UNK: 2, **{c: i + 3 for i, c in enumerate(dict.fromkeys(alphabet))}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # every character a word
    tok.decoder = decoders.Fuse()  # join without the spaces WordLevel would put between words
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK,
                                   padding_side="left")


def load_tokenizer(path: str):
    """A local tokenizer folder (never downloaded); left padding for batched prompts, and a pad
    token (the end-of-sequence token) where the tokenizer has none, as GRPO trainers do."""
    from transformers import AutoTokenizer

    if not Path(path).is_dir():
        raise UserError(f"tokenizer folder {path} does not exist; give a local folder (task.model.tokenizer=...) "
                        "holding tokenizer.json or the tokenizer's files (nothing is downloaded)")
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise UserError(f"{path} holds no tokenizer that transformers can load ({type(e).__name__}); "
                        "point task.model.tokenizer at the folder with tokenizer.json") from None
    if tok.eos_token_id is None:
        raise UserError(f"the tokenizer in {path} has no end-of-sequence token; set eos_token in its config")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok
