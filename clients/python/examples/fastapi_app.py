"""A FastAPI service: GET /whoami for signoff's access tokens, and the receivers of signoff's
logout notifications. Run: uvicorn fastapi_app:app --host 127.0.0.1 --port 8000

Configured from the environment: SIGNOFF_URL, and the client registered for this service:
SIGNOFF_CLIENT_ID, SIGNOFF_CLIENT_SECRET, SIGNOFF_WEBHOOK_SECRET (its webhook_secret).
"""

import json
import os
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from signoff_verify import Verifier
from signoff_verify.fastapi import SignoffBearer, logout_receiver, webhook_receiver

verifier = Verifier(
    os.environ["SIGNOFF_URL"],
    os.environ["SIGNOFF_CLIENT_ID"],
    os.environ["SIGNOFF_CLIENT_SECRET"],
    stale_after=3.0,
)
Claims = Annotated[dict[str, Any], Depends(SignoffBearer(verifier))]


@asynccontextmanager
async def lifespan(app):
    yield
    verifier.close()


app = FastAPI(lifespan=lifespan)


@app.get("/whoami")
def whoami(claims: Claims):
    return {"sub": claims["sub"]}


def end_sessions(record):
    # Your code here: end this app's own sessions for record["sid"]. This example appends what
    # it was told to the file named by EXAMPLE_RECEIVED (the tests read it).
    with open(os.environ["EXAMPLE_RECEIVED"], "a") as f:
        f.write(json.dumps(record) + "\n")


def on_logout(logout):
    end_sessions({"via": "backchannel", "sid": logout.sid, "sub": logout.sub, "jti": logout.jti})


def on_event(event, webhook_id):
    if event["type"] == "session.ended":
        end_sessions({"via": "webhook", "sid": event["data"]["session_id"], "id": webhook_id})


app.add_api_route(
    "/signoff/backchannel-logout",
    logout_receiver(on_logout, url=os.environ["SIGNOFF_URL"], client_id=os.environ["SIGNOFF_CLIENT_ID"]),
    methods=["POST"],
)
app.add_api_route(
    "/signoff/webhooks",
    webhook_receiver(on_event, secrets=[os.environ["SIGNOFF_WEBHOOK_SECRET"]]),
    methods=["POST"],
)
