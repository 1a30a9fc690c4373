"""Class sessions and their seats: scheduling, enrolling, cancelling, the waitlist.

A session holds the room like a booking (as many persons as it has seats). Its seats in
force are never more than the room's capacity (a capacity cut caps them). A party that
fits the free seats gets a seat, waitlist or not; one that does not waits. Seats freed (a
confirmed enrollment cancelled, the room's capacity raised) go to the oldest waitlisted
party that fits, again and again (``promote``). So after every decision no waitlisted
party fits the free seats, and the rule for a newcomer and for a promotion is the same.
"""

from __future__ import annotations

from typing import Literal

from domain.capacity.decider import Decider
from domain.capacity.room import Enrollment, Room, Session
from schemas.decisions import (
    EnrollmentCancelled,
    EnrollmentConfirmed,
    EnrollmentPromoted,
    EnrollmentRejected,
    EnrollmentRejectReason,
    EnrollmentWaitlisted,
    SessionRejected,
    SessionRejectReason,
    SessionScheduledDecision,
)
from schemas.inputs import EnrollmentCancelRequested, EnrollmentRequested, SessionScheduled


def schedule_session(room: Room | None, event: SessionScheduled, d: Decider) -> None:
    def reject(reason: SessionRejectReason) -> None:
        d.add(
            SessionRejected(**d.common(event.room_id), session_id=event.session_id, reason=reason)
        )

    if room is None:
        return reject("unknown_room")
    if event.session_id in room.sessions:
        return reject("invalid")
    problem = room.hold_problem(event.capacity, event.starts_at, event.ends_at, d.now)
    if problem is not None:
        return reject(problem)
    room.add_session(
        Session(
            session_id=event.session_id,
            title=event.title,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            capacity=event.capacity,
        )
    )
    d.add(
        SessionScheduledDecision(
            **d.common(room.room_id),
            session_id=event.session_id,
            title=event.title,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            capacity=event.capacity,
        )
    )
    return None


def enroll(room: Room | None, event: EnrollmentRequested, d: Decider) -> None:
    def reject(reason: EnrollmentRejectReason) -> None:
        d.add(
            EnrollmentRejected(
                **d.common(event.room_id),
                session_id=event.session_id,
                member_id=event.member_id,
                reason=reason,
            )
        )

    session = room.sessions.get(event.session_id) if room else None
    if room is None or session is None:
        return reject("unknown_session")
    if session.find(event.member_id) is not None:
        return reject("already_enrolled")
    if session.ends_at <= d.now or event.party_size > session.capacity:
        return reject("invalid")
    enrollment = Enrollment(event.member_id, event.party_size)
    # The waitlist holds only parties too big for the free seats: one that fits is seated.
    if event.party_size <= session.free_seats(room.capacity):
        session.enrolled.append(enrollment)
        d.add(
            EnrollmentConfirmed(
                **d.common(room.room_id),
                session_id=session.session_id,
                member_id=event.member_id,
                party_size=event.party_size,
            )
        )
    else:
        session.waitlist.append(enrollment)
        d.add(
            EnrollmentWaitlisted(
                **d.common(room.room_id),
                session_id=session.session_id,
                member_id=event.member_id,
                party_size=event.party_size,
                waitlist_position=len(session.waitlist),
            )
        )
    return None


def cancel_enrollment(room: Room | None, event: EnrollmentCancelRequested, d: Decider) -> None:
    session = room.sessions.get(event.session_id) if room else None
    found = session.find(event.member_id) if session else None
    if room is None or session is None or found is None:
        d.add(
            EnrollmentRejected(
                **d.common(event.room_id),
                session_id=event.session_id,
                member_id=event.member_id,
                reason="unknown_enrollment",
            )
        )
        return
    queue, enrollment = found
    was: Literal["confirmed", "waitlisted"] = (
        "confirmed" if queue is session.enrolled else "waitlisted"
    )
    queue.remove(enrollment)
    d.add(
        EnrollmentCancelled(
            **d.common(room.room_id),
            session_id=session.session_id,
            member_id=event.member_id,
            was=was,
        )
    )
    if was == "confirmed":
        promote(room, session, d)


def promote(room: Room, session: Session, d: Decider) -> None:
    """Freed seats go to the oldest waitlisted enrollments that fit, in order."""
    promoted = True
    while promoted:
        promoted = False
        for waiting in session.waitlist:
            if waiting.party_size <= session.free_seats(room.capacity):
                session.waitlist.remove(waiting)
                session.enrolled.append(waiting)
                d.add(
                    EnrollmentPromoted(
                        **d.common(room.room_id),
                        session_id=session.session_id,
                        member_id=waiting.member_id,
                        party_size=waiting.party_size,
                    )
                )
                promoted = True
                break


def promote_everywhere(room: Room, d: Decider) -> None:
    """After the room's capacity changed: sessions not over yet may have seats again."""
    for session in room.sessions.values():
        if d.now < session.ends_at and session.waitlist:
            promote(room, session, d)
