/* Diagnosis: every failure the core can name, in words a person can act on. */
#include <stdio.h>
#include <string.h>

#include "cacreg.h"

static const cacreg_diagnosis CARD_OFFICE = {
    "Your card cannot be used as it is.",
    "Take it to a CAC office (RAPIDS ID card office) to have it checked or replaced."};

cacreg_diagnosis cacreg_diagnose_verdict(cacreg_verdict v)
{
    switch (v) {
    case CACREG_VERDICT_OK:
        return (cacreg_diagnosis){"Your card's identity certificate is in order.", ""};
    case CACREG_VERDICT_UNTRUSTED:
        return (cacreg_diagnosis){
            "Your card's certificate was issued by an authority this machine does not trust.",
            "If this is a DoD CAC, ask the help desk to install the DoD root certificates on "
            "this machine. Other cards (ECA, PIV-I, a foreign card) cannot be registered here."};
    case CACREG_VERDICT_NOT_YET_VALID:
        return (cacreg_diagnosis){
            "Your card's certificate is not valid yet, which usually means this machine's "
            "clock is wrong.",
            "Check the date and time on this machine; if they are right, wait until the "
            "certificate's start date or ask the CAC office."};
    case CACREG_VERDICT_EXPIRED:
        return (cacreg_diagnosis){"Your card's certificates have expired.",
                                  "Get a new CAC at a CAC office (RAPIDS)."};
    case CACREG_VERDICT_REVOKED:
        return (cacreg_diagnosis){
            "Your card's certificates have been revoked (cancelled).",
            "Take the card to a CAC office (RAPIDS); a revoked card cannot be registered."};
    case CACREG_VERDICT_REVOCATION_UNKNOWN:
        return (cacreg_diagnosis){
            "Whether your card has been revoked cannot be checked right now.",
            "Try again in a few minutes; if it goes on, tell the help desk that the revocation "
            "service (CRL or OCSP) cannot be reached."};
    case CACREG_VERDICT_WRONG_KIND:
        return (cacreg_diagnosis){
            "The certificate chosen is not your identity certificate.",
            "Choose the certificate with your name that is for identity (authentication), "
            "not an email certificate."};
    case CACREG_VERDICT_EDIPI_MISMATCH:
        return (cacreg_diagnosis){
            "Your card names two different DoD ID numbers (EDIPIs): its certificate's name "
            "and its UPN disagree, so it cannot be registered.",
            "Take the card to a CAC office (RAPIDS) to have it replaced."};
    case CACREG_VERDICT_NO_TRUST_STORE:
        break;
    }
    if (v == CACREG_VERDICT_NO_TRUST_STORE)
        return (cacreg_diagnosis){
            "This machine has no certificate authorities set up to check cards against.",
            "Tell the help desk: cacreg's ca_bundle setting is missing or unreadable."};
    return CARD_OFFICE;
}

/* The portal's reasons (docs/portal-api.md), each with its words. */
static const cacreg_diagnosis portal_reasons[] = {
    [CACREG_PORTAL_NO_CLIENT_CERTIFICATE] =
     {"The portal did not receive your card's certificate.",
      "Make sure the card is fully inserted and the reader's light is on, then try again."},
    [CACREG_PORTAL_UNTRUSTED_ISSUER] =
     {"The portal does not accept the authority that issued your card's certificate.",
      "Only DoD CAC certificates can be registered. If this is a CAC, ask the help desk."},
    [CACREG_PORTAL_CERTIFICATE_NOT_YET_VALID] =
     {"The portal says your card's certificate is not valid yet.",
      "Check this machine's date and time; a clock set wrong causes this."},
    [CACREG_PORTAL_CERTIFICATE_EXPIRED] =
     {"The portal says your card's certificates have expired.",
      "Get a new CAC at a CAC office (RAPIDS)."},
    [CACREG_PORTAL_CERTIFICATE_REVOKED] =
     {"The portal says your card's certificates have been revoked.",
      "Take the card to a CAC office (RAPIDS)."},
    [CACREG_PORTAL_NOT_IDENTITY_CERTIFICATE] =
     {"The certificate sent was not your identity certificate (an email one was used).",
      "Choose the identity certificate, the one with your name for logging in."},
    [CACREG_PORTAL_NO_ACCOUNT] =
     {"The portal has no account for the person on this card.",
      "Log in with your username and password to register the card, or ask the help desk "
      "to create or link your account."},
    [CACREG_PORTAL_ACCOUNT_NOT_PERMITTED] =
     {"Your account may not use a CAC (it may be suspended).",
      "Contact the help desk about your account."},
    [CACREG_PORTAL_REGISTERED_TO_OTHER_ACCOUNT] =
     {"This card is already registered to another account.",
      "Log in to that account and clear its registered information, or ask the help desk."},
    [CACREG_PORTAL_EDIPI_MISMATCH] =
     {"This card belongs to someone else than the account you are logged in to.",
      "Insert your own CAC, or log in to the account of the card's holder."},
    [CACREG_PORTAL_INVALID_CREDENTIALS] =
     {"The username or password is wrong.",
      "Check them and try again; too many wrong passwords lock the account."},
    [CACREG_PORTAL_PASSWORD_EXPIRED] =
     {"Your portal password has expired.",
      "Log in with your CAC instead (that also renews the password for 150 days), or ask "
      "for a new password with 'I need a password'."},
    [CACREG_PORTAL_ACCOUNT_LOCKED] =
     {"Your account is locked after too many wrong passwords.",
      "Log in with your CAC (that unlocks it), or ask the help desk."},
    [CACREG_PORTAL_SESSION_EXPIRED] =
     {"Your session with the portal has ended.", "Log in again."},
    [CACREG_PORTAL_NO_SESSION] = {"You are not logged in to the portal.", "Log in again."},
    [CACREG_PORTAL_REVOCATION_UNAVAILABLE] =
     {"The portal cannot check your card's revocation status right now.",
      "Try again in a few minutes."},
    [CACREG_PORTAL_DIRECTORY_UNAVAILABLE] =
     {"The portal cannot reach the directory that keeps the accounts right now; nothing was "
      "changed.",
      "Try again in a few minutes. If it goes on, tell the help desk: the site's directory is "
      "down or refuses the portal."},
};

cacreg_diagnosis cacreg_diagnose_portal(const cacreg_portal_result *r)
{
    switch (r->err) {
    case CACREG_OK:
        return (cacreg_diagnosis){"Done.", ""};
    case CACREG_ERR_REFUSED:
        if ((size_t)r->reason < sizeof portal_reasons / sizeof portal_reasons[0] &&
            portal_reasons[r->reason].cause)
            return portal_reasons[r->reason];
        return (cacreg_diagnosis){"The portal refused the request.",
                                  "Note the message shown and tell the help desk."};
    case CACREG_ERR_UNREACHABLE:
        return (cacreg_diagnosis){
            "The portal cannot be reached from this machine right now.",
            "Check the network connection and try again in a few minutes."};
    case CACREG_ERR_TLS:
        return (cacreg_diagnosis){
            "The connection to the portal is not safe: its identity could not be verified.",
            "Do not go on. Tell the help desk; this machine's clock, its certificate "
            "authorities or the network may be wrong."};
    case CACREG_ERR_BAD_ANSWER:
        return (cacreg_diagnosis){"The portal gave an answer that cannot be used.",
                                  "Try again in a few minutes; nothing was changed."};
    default:
        break;
    }
    return (cacreg_diagnosis){"Cancelled.", ""};
}

cacreg_diagnosis cacreg_diagnose_card(cacreg_err err)
{
    switch (err) {
    case CACREG_OK:
        return (cacreg_diagnosis){"PIN accepted.", ""};
    case CACREG_ERR_PIN_WRONG:
        return (cacreg_diagnosis){
            "The PIN is wrong.",
            "Enter it carefully: a CAC locks after 3 wrong PINs. If you do not know it, the "
            "CAC office can reset it."};
    case CACREG_ERR_PIN_LOCKED:
        return (cacreg_diagnosis){"Your card's PIN is locked after too many wrong tries.",
                                  "A CAC office (RAPIDS) can reset the PIN; bring your card."};
    case CACREG_ERR_PIN_FORMAT:
        return (cacreg_diagnosis){"A CAC PIN is 6 to 8 digits.", "Enter the PIN again."};
    case CACREG_ERR_NO_CARD:
        return (cacreg_diagnosis){"The card was removed, or cannot be read.",
                                  "Insert your CAC and try again."};
    case CACREG_ERR_NO_KEY:
        return (cacreg_diagnosis){
            "Your card's identity certificate has no private key the card will use: the card "
            "cannot sign for it.",
            "Take the card to a CAC office (RAPIDS) to have it checked or replaced."};
    case CACREG_ERR_NOT_CAC:
        return (cacreg_diagnosis){
            "The card in the reader is not a CAC, or not one the smart-card software knows.",
            "Insert your Common Access Card. If it is your CAC, it may be damaged: the CAC "
            "office can check it."};
    case CACREG_ERR_KEY_UNSUPPORTED:
        return (cacreg_diagnosis){
            "Your card's identity key is of a kind (elliptic curve) the smart-card software on "
            "this machine cannot use with a CAC.",
            "Nothing was sent, and your PIN was not used. Tell the help desk: OpenSC's CAC "
            "support here uses RSA keys only."};

    default:
        break;
    }
    return (cacreg_diagnosis){"The card could not check the PIN.",
                              "Take the card out, put it back, and try again."};
}

bool cacreg_diagnose_clock(const cacreg_portal_result *r, char *buf, size_t size)
{
    long long skew = r->clock_skew_s < 0 ? -r->clock_skew_s : r->clock_skew_s;

    if (!r->server_time || skew <= 300)
        return false;
    snprintf(buf, size, "This machine's clock is %lld minutes %s the portal's; a wrong clock "
                        "makes valid certificates look expired or not yet valid. Have the "
                        "clock set right.",
             skew / 60, r->clock_skew_s > 0 ? "ahead of" : "behind");
    return true;
}

cacreg_diagnosis cacreg_diagnose_say(cacreg_say what)
{
    static const cacreg_diagnosis words[] = {
        [CACREG_SAY_CARD_REMOVED] = {"The card was removed; nothing was finished.",
                                     "Insert your CAC and start again."},
        [CACREG_SAY_IDLE] = {"Nothing was typed for a while, so this was stopped and cleared.",
                             "Start again when you are ready."},
        [CACREG_SAY_NO_MODULE] = {"The smart-card software (the PKCS#11 module) cannot be loaded.",
                                  "Tell the help desk: OpenSC may not be installed."},
        [CACREG_SAY_PCSC_DOWN] = {"The smart-card service (pcscd) is not running.",
                                  "Tell the help desk: pcscd must be installed and started."},
        [CACREG_SAY_PCSC_DENIED] = {"The smart-card service refuses this session.",
                                    "Tell the help desk: a polkit rule must allow this user the "
                                    "card readers (cacreg status shows it)."},
        [CACREG_SAY_BAD_USERNAME] = {"Enter your portal username (the one you log in to the "
                                     "portal with).", ""},
        [CACREG_SAY_NO_PASSWORD] = {"Enter your portal password.", ""},
        [CACREG_SAY_NOT_STARTED] = {"The request to the portal could not be started.",
                                    "Try again."},
        [CACREG_SAY_CLEARED] = {"The registered information was cleared.", ""},
        [CACREG_SAY_CARD_UNREADABLE] = {"The card's certificates could not be read.",
                                        "Take the card out, put it back, and try again; if it "
                                        "goes on, the CAC office can check the card."},
        [CACREG_SAY_PCSC_STOPPED] = {"The smart-card service (pcscd) stopped; nothing was "
                                     "finished.",
                                     "Start again; if it goes on, tell the help desk."},
        [CACREG_SAY_CARD_STUCK] = {"The card stopped answering.",
                                   "Take the card out, put it back, and start again. If it "
                                   "happens again, the card or the reader may be faulty."},
    };

    if ((size_t)what < sizeof words / sizeof words[0] && words[what].cause)
        return words[what];
    return (cacreg_diagnosis){"Something went wrong.", "Start again."};
}
