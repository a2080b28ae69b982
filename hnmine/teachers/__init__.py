"""Teachers score (query, document) pairs. Chosen by kind: bi-encoder, cross-encoder; several form an ensemble."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hnmine.errors import UnknownName

TEACHER_KINDS = ("bi-encoder", "cross-encoder")


@dataclass(frozen=True)
class TeacherSpec:
    kind: str
    model: str
    name: str = ""  # the label's model part when the last path part is shared with another teacher

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
        short = self.name or self.model.rstrip("/").split("/")[-1]
        return f"{self.kind}:{short}"


def teacher_specs(options) -> tuple[TeacherSpec, ...]:
    """The teachers of a run's options: --teacher values (KIND:MODEL or MODEL with --teacher-type), or the
    --model bi-encoder when none is given."""
    if not options.teacher:
        return (TeacherSpec("bi-encoder", options.model),)
    specs = list(dict.fromkeys(TeacherSpec.parse(t, options.teacher_type, options.model) for t in options.teacher))
    return tuple(_distinct_labels(specs))


def _distinct_labels(specs: list[TeacherSpec]) -> list[TeacherSpec]:
    """Each teacher's label names its scores column and its manifest entry: two checkpoints in folders of
    the same name (runs/a/model, runs/b/model) must not share one, or one teacher's scores replace the
    other's. A shared label takes as many path parts as it needs to be told apart."""
    out = list(specs)
    for depth in range(2, 64):
        labels = [t.label for t in out]
        clash = {lab for lab in labels if labels.count(lab) > 1}
        if not clash:
            return out
        out = [replace(t, name="/".join(t.model.rstrip("/").split("/")[-depth:])) if t.label in clash else t for t in out]
    return [replace(t, name=f"{t.model.rstrip('/').split('/')[-1]}#{i}") for i, t in enumerate(out, start=1)]


def check_models_found(options) -> None:
    """Every model a stage of the run will load can be found (hnmine.inference.models.check_model_found),
    checked by the stages that load them before any work. With both --corpus-embeddings and
    --query-embeddings no stage loads --model: it only labels the vectors."""
    from hnmine.inference.models import check_model_found

    labels_only = options.corpus_embeddings is not None and options.query_embeddings is not None
    if not labels_only:
        check_model_found(options.model, "--model")
    for name in options.candidate_model:
        check_model_found(name, "--candidate-model")
    for text in options.teacher:  # KIND:MODEL, or MODEL (the --model when empty)
        name = TeacherSpec.parse(text, options.teacher_type, options.model).model
        if not (labels_only and name == options.model):
            check_model_found(name, "--teacher")
