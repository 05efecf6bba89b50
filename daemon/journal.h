/* SPDX-License-Identifier: MIT */
#pragma once

/* Key events as structured journal entries with a MESSAGE_ID (journalctl MESSAGE_ID=… finds
 * them), or plain stderr lines when not running under systemd. */

#define MESSAGE_ID_JOB_STARTED        "cb4ca59a57954e46b4ac9f6de7bb1e50"
#define MESSAGE_ID_JOB_FINISHED       "82052c5da9384f89a634a62bdaf911e3"
#define MESSAGE_ID_JOB_FAILED         "c776e459deac4e889fe29431df58b032"
#define MESSAGE_ID_MIGRATION_APPLIED  "4cd22e6f27bc457da5da5b65fe7a76b0"
#define MESSAGE_ID_MIGRATION_FAILED   "9fb45ec7398047b2be786c8b28276784"
#define MESSAGE_ID_UNIT_STOPPED       "d807e9511872448d8f1e53fcc7722138"
#define MESSAGE_ID_UNIT_KILLED        "3b82c822ac504402be12b07d20af8d23"
#define MESSAGE_ID_UNIT_STARTED       "fb753986cf72426d85c1ab2083db9716"
#define MESSAGE_ID_UNIT_FAILED        "814c309f676e4d7fb808120d1b32156d"
#define MESSAGE_ID_HOLDERS_FOUND      "6438947f276b4e6fa5ac893dde8cd29d"
#define MESSAGE_ID_RECOVERED          "129b5791dae745a883cf5a17d88a5735"

/* Variadic: pairs of field name and value (both strings, value may be NULL to skip), ended by
 * NULL. Field names are upper case, e.g. "UNIT", "MIGRATION_VERSION". */
void journal_event(int priority, const char *message_id, const char *message, ...);
