"""Teachers score (query, document) pairs. Chosen by kind: bi-encoder, cross-encoder; several form an ensemble."""

from __future__ import annotations

from dataclasses import dataclass

from hnmine.errors import UnknownName

TEACHER_KINDS = ("bi-encoder", "cross-encoder")


@dataclass(frozen=True)
class TeacherSpec:
    kind: str
    model: str

    @classmethod
    def parse(cls, text: str, default_kind: str, default_model: str) -> TeacherSpec:
        """'MODEL', 'KIND:MODEL', or '' (the retriever's model)."""
        kind, model = default_kind, text
        for k in TEACHER_KINDS:
            if text.startswith(k + ":"):
                kind, model = k, text[len(k) + 1 :]
        if kind not in TEACHER_KINDS:
            raise UnknownName("teacher type", kind, list(TEACHER_KINDS))
        return cls(kind=kind, model=model or default_model)

    @property
    def label(self) -> str:
        short = self.model.rstrip("/").split("/")[-1]
        return f"{self.kind}:{short}"


def teacher_specs(options) -> tuple[TeacherSpec, ...]:
    """The teachers of a run's options: --teacher values (KIND:MODEL or MODEL with --teacher-type), or the
    --model bi-encoder when none is given."""
    if not options.teacher:
        return (TeacherSpec("bi-encoder", options.model),)
    return tuple(TeacherSpec.parse(t, options.teacher_type, options.model) for t in options.teacher)
