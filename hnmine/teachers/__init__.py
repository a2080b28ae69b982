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
    --model bi-encoder when none is given (a --premined file's scores, kind `premined`, when it has them)."""
    if not options.teacher:
        from hnmine.io.premined import teacher_name

        premined = teacher_name(options)  # a --premined file's own scores, where it has them
        return (TeacherSpec("premined", premined),) if premined else (TeacherSpec("bi-encoder", options.model),)
    specs = list(dict.fromkeys(TeacherSpec.parse(t, options.teacher_type, options.model) for t in options.teacher))
    return tuple(_distinct_labels(specs))


def rerank_spec(options) -> TeacherSpec | None:
    """A cascade's strong teacher (--rerank-teacher KIND:MODEL or MODEL, a cross-encoder by default), or None."""
    text = getattr(options, "rerank_teacher", None)
    if not text:
        return None
    return TeacherSpec.parse(text, "cross-encoder", options.model)


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
    named: list[tuple[str, str]] = [] if labels_only else [(options.model, "--model")]
    named += [(name, "--candidate-model") for name in options.candidate_model]
    for text in options.teacher:  # KIND:MODEL, or MODEL (the --model when empty)
        name = TeacherSpec.parse(text, options.teacher_type, options.model).model
        if not (labels_only and name == options.model):
            named.append((name, "--teacher"))
    strong = rerank_spec(options)
    if strong is not None:
        named.append((strong.model, "--rerank-teacher"))
    for name, flag in named:
        check_model_found(name, flag)
    check_loaded_in_process(options, [name for name, _ in named])


def check_loaded_in_process(options, names: list[str]) -> None:
    """A model object of the caller (hnmine.inference.models.register_loaded) exists in this process only:
    worker processes cannot use it, nor can another backend than torch run it."""
    from hnmine.errors import OptionError
    from hnmine.inference.models import is_loaded
    from hnmine.inference.pool import worker_count

    if not any(is_loaded(n) for n in names):
        return
    if worker_count(options.device, options.workers) > 1:
        raise OptionError(
            "a model object passed to hnmine.mine runs in this process, not in worker processes (--workers, or several "
            "--device): give one worker and one device, or the model's name or path (model.save(PATH))"
        )
    if options.backend != "torch" and is_loaded(options.model):
        raise OptionError(f"--backend {options.backend} needs a model name or path: a model object passed to hnmine.mine runs on torch")
