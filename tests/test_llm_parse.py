"""parse_label on the shapes real models reply in."""

from __future__ import annotations

import pytest

from labelloop.llm.parse import ParseError, parse_label, parse_label_span

pytestmark = pytest.mark.unit

CLASSES = ("business", "entertainment", "politics", "sport", "sports tech", "tech")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("sport", "sport"),
        ("  Sport.  ", "sport"),
        ('"tech"', "tech"),
        ("`politics`", "politics"),
        ("**Business**", "business"),
        ("TECH!", "tech"),
        ("sports tech", "sports tech"),  # a class that contains another class
        ("Sports Tech.", "sports tech"),
        ('{"label": "sport"}', "sport"),
        ('{"reason": "a football match", "label": "Sport", "confidence": 0.9}', "sport"),
        ('```json\n{\n  "label": "entertainment"\n}\n```', "entertainment"),
        ('Sure! Here is my answer:\n```json\n{"label": "politics", "notes": "x"}\n```', "politics"),
        ("Let me think. The text talks about a merger.\n\nLabel: business", "business"),
        ("The article covers a film premiere.\nFinal label: entertainment", "entertainment"),
        ("Reasoning: chips.\n**Final label:** Tech", "tech"),
        ("**Final label: Sport**", "sport"),
        ("Final Label: 3", "politics"),
        ("final label: 6.", "tech"),
        ("Label: tech\nWait, on reflection it is about a match.\nFinal label: sport", "sport"),
        ("I think it could be business.\nFinal label: politics (it is about a vote)", "politics"),
        ("Final label: sports tech", "sports tech"),
        ('{"label": 4}', "sport"),
    ],
)
def test_parse_label_accepts_real_reply_shapes(reply: str, expected: str) -> None:
    assert parse_label(reply, CLASSES) == expected


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("I cannot decide between these.", "could not find a class"),
        ("Final label: weather", "'weather'"),
        ('{"label": "weather"}', "'weather'"),
        ("Final label: 9", "'9'"),
        ("This article is about sport and also about tech and many other things in depth.", "could not find"),
    ],
)

def test_parse_label_rejects_with_helpful_message(reply: str, fragment: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_label(reply, CLASSES)
    message = str(info.value)
    assert fragment in message
    assert "tech" in message  # the message lists the classes, so the model can correct itself


def test_span_points_at_the_label_in_the_reply() -> None:
    for reply in ('{"label": "sport"}', "Thinking...\nFinal label: sport", "sport"):
        label, offset = parse_label_span(reply, CLASSES)
        assert reply[offset:offset + len(label)] == "sport"
    assert parse_label_span("Final label: 4", CLASSES) == ("sport", None)
