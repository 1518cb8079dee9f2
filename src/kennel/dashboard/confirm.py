"""The confirm step of the forms that change or destroy something hard to undo.

Such a form acts only when it carries `confirmed=yes`. The page's script asks in a dialog and
adds the field; without the script (or from any other client) the route answers a page that
asks the same question, with a form that carries it. So the step holds for every browser, and
each question is written once, here, for both.
"""

from __future__ import annotations

from typing import NamedTuple

from kennel.dashboard.forms import SubmittedForm

__all__ = ["QUESTIONS", "ConfirmFirst", "Question", "require_confirmed"]


class Question(NamedTuple):
    text: str
    button: str


QUESTIONS = {
    "cancel-schedule": Question(
        "Cancel this schedule? It will not fire again; a task it already started goes on.",
        "Cancel schedule",
    ),
    "remove-webhook": Question(
        "Remove the webhook? Its token is deleted and retries of earlier events stop.",
        "Remove webhook",
    ),
    "regenerate-token": Question(
        "Make a new token? Your receiver must learn it: the old one signs deliveries only for"
        " a grace period.",
        "Regenerate token",
    ),
    "archive-task": Question(
        "Archive this task? A turn still running is stopped, and the task leaves the lists.",
        "Archive",
    ),
    "delete-worker": Question(
        "Delete this worker? Its schedules are cancelled and its webhook is removed. This"
        " cannot be undone here.",
        "Delete worker",
    ),
}


class ConfirmFirst(Exception):
    """Not confirmed yet: `kennel.dashboard.routing.DashboardRoute` answers the question."""

    def __init__(self, question: Question, action: str, back: str, subject: str) -> None:
        super().__init__(question.text)
        self.question = question
        self.action = action
        self.back = back
        self.subject = subject


def require_confirmed(
    form: SubmittedForm, kind: str, *, action: str, back: str, subject: str = ""
) -> None:
    """Go on only if the form says `confirmed=yes`; else ask (`ConfirmFirst`): the answer
    posts to `action`, and `back` is where "Keep it" leads. `subject`: what is concerned (a
    worker's title), shown with the question."""
    if form.text("confirmed") != "yes":
        raise ConfirmFirst(QUESTIONS[kind], action, back, subject)
