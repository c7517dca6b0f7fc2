"""Chunking and truncation with the real packaged MiniLM tokenizer."""

from __future__ import annotations

import pytest

from labelloop.errors import ModelNotAvailableError
from labelloop.ingest.chunking import Chunker, backend_of, load_tokenizer
from labelloop.ingest.truncation import SEPARATOR, truncate

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def n_tokens(tok, text: str) -> int:
    return len(backend_of(tok).encode(text, add_special_tokens=False).ids)


def test_short_text_is_one_chunk(tok):
    chunks = Chunker(tok, 64).chunk("  A short note.\n\nWith two paragraphs.  ")
    assert chunks == [("A short note.\n\nWith two paragraphs.", n_tokens(tok, "A short note.\n\nWith two paragraphs."))]


def test_whitespace_only_gives_no_chunks(tok):
    chunker = Chunker(tok, 16)
    assert chunker.chunk("") == [] and chunker.chunk(" \n\n\t \n") == []


def test_paragraphs_are_packed_greedily_and_cut_at_blank_lines(tok):
    paras = [f"Paragraph number {i} talks about topic {i}." for i in range(12)]
    per_para = n_tokens(tok, paras[0])
    size = per_para * 3 + 1
    chunks = Chunker(tok, size).chunk("\n\n".join(paras))
    assert [t for t, _ in chunks] == ["\n\n".join(paras[i:i + 3]) for i in range(0, 12, 3)]
    assert all(n == n_tokens(tok, t) <= size for t, n in chunks)


def test_long_paragraph_splits_at_sentences(tok):
    sentences = [f"Sentence {i} is here and it says something." for i in range(10)]
    per_sentence = n_tokens(tok, sentences[0])
    size = 2 * per_sentence
    chunks = Chunker(tok, size).chunk(" ".join(sentences))
    assert [t for t, _ in chunks] == [" ".join(sentences[i:i + 2]) for i in range(0, 10, 2)]
    assert all(n == n_tokens(tok, t) for t, n in chunks)


def test_over_long_sentence_is_hard_split_at_word_starts(tok):
    words = [f"token{i}" for i in range(300)]
    text = " ".join(words)
    size = 50
    chunks = Chunker(tok, size).chunk(text)
    assert len(chunks) > 1
    assert " ".join(t for t, _ in chunks) == text  # cut only between words, nothing lost
    assert all(n == n_tokens(tok, t) <= size for t, n in chunks)
    assert max(n for _, n in chunks) >= size - 5  # windows are filled, not tiny


def test_chunk_size_is_respected_exactly_on_real_prose(tok):
    text = (
        "The central bank raised interest rates again on Thursday, citing stubborn inflation.\n\n"
        "Analysts had expected the move. \"It was priced in,\" said one trader; markets barely moved!\n"
        "Meanwhile, unemployment fell to 3.9% - the lowest since 2001 - while wages rose 4.2%.\n\n"
        + "Supercalifragilisticexpialidocious-antidisestablishmentarianism " * 40
    )
    for size in (8, 17, 32, 100):
        chunks = Chunker(tok, size).chunk(text)
        assert chunks
        for t, n in chunks:
            assert n == n_tokens(tok, t) and 0 < n <= size and t == t.strip()


def test_chunk_many_matches_chunk(tok):
    chunker = Chunker(tok, 20)
    texts = ["one two three", "", "A much longer text. " * 30, "x\n\ny\n\nz"]
    assert chunker.chunk_many(texts) == [chunker.chunk(t) for t in texts]


def test_bad_encoder_path_names_the_fix(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="student.encoder"):
        load_tokenizer(str(tmp_path / "missing"))


# ---------------------------------------------------------------- truncation


LONG = " ".join(f"word{i}" for i in range(400))


def test_short_text_is_untouched(tok):
    r = truncate("Just a few words.", tok, 32, "head-tail")
    assert (r.text, r.truncated, r.spans) == ("Just a few words.", False, [(0, 17)])


def test_head_keeps_first_tokens_on_token_boundaries(tok):
    r = truncate(LONG, tok, 30, "head")
    assert r.truncated and r.spans == [(0, len(r.text))]
    assert LONG.startswith(r.text) and LONG[len(r.text)] == " "  # cut between words
    assert 27 <= n_tokens(tok, r.text) <= 30


def test_head_tail_keeps_quarter_head_and_three_quarter_tail(tok):
    budget = 120
    r = truncate(LONG, tok, budget, "head-tail")
    assert r.truncated and SEPARATOR in r.text
    head, tail = r.text.split(SEPARATOR)
    (hs, he), (ts, te) = r.spans
    assert LONG[hs:he] == head and LONG[ts:te] == tail and te == len(LONG)
    assert n_tokens(tok, r.text) <= budget
    content = budget - n_tokens(tok, SEPARATOR)
    h, t = n_tokens(tok, head), n_tokens(tok, tail)
    assert content // 4 - 3 <= h <= content // 4
    assert content - content // 4 - 3 <= t <= content - content // 4


def test_truncation_rejects_unknown_kind(tok):
    with pytest.raises(ValueError, match="head-tail"):
        truncate(LONG, tok, 10, "middle")  # type: ignore[arg-type]


def test_truncation_never_exceeds_budget(tok):
    text = "Supercalifragilisticexpialidocious " * 200
    for budget in (1, 3, 9, 12, 64):
        for kind in ("head", "head-tail"):
            r = truncate(text, tok, budget, kind)
            assert r.truncated and 0 < n_tokens(tok, r.text) <= budget


def test_byte_level_bpe_tokenizer_counts_are_verified():
    # Byte-level BPE joins a space to the next word, so piece counts need not add up:
    # the chunker must re-tokenize and still respect chunk_size exactly.
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    corpus = [
        "The central bank raised interest rates again. Markets barely moved!",
        "Shares in the carmaker rose after record quarterly profits.",
        "The striker scored twice in the final, and the crowd cheered.",
    ] * 20
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()  # so newlines between paragraphs cost tokens too
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, initial_alphabet=alphabet, show_progress=False))
    text = "\n\n".join(corpus[:6]) + "\n\n" + "unseenwordwithoutspaces" * 30
    for size in (5, 12, 40):
        chunks = Chunker(bpe, size).chunk(text)
        assert chunks
        for t, n in chunks:
            assert n == len(bpe.encode(t, add_special_tokens=False).ids) <= size
