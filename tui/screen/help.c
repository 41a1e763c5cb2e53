/* The help and troubleshooting pages. Plain ASCII; "\n" ends a line, an
 * empty line separates paragraphs. */
#include "tui.h"

const struct tui_help_page tui_help_pages[] = {
    {"The two ways to register",
     "CAC login (the quick way): put your CAC in the reader, choose C, type your PIN. The "
     "portal logs you in with the card and, in the same step, records the card as yours.\n"
     "\n"
     "Password login, then register: choose P and log in with your portal username and "
     "password. You see what is registered to your account now, or that nothing is. From "
     "there R registers the card in the reader: pick the certificate with your name (the "
     "identity one, already marked), type the card's PIN, then your portal password again "
     "to confirm. C clears what is registered, after you confirm.\n"
     "\n"
     "Use the second way when the first one is refused, for example because the portal "
     "does not yet know which account the card belongs to.\n"
     "\n"
     "You need: the card, its PIN (6 to 8 digits, set at the CAC office), an active portal "
     "account, and for the second way its password."},
    {"What this machine needs for a card reader",
     "The panel on the right checks each of these live:\n"
     "- the smart-card service, pcscd, running (Debian: apt install pcscd; it starts when a "
     "program asks for it);\n"
     "- the card software, OpenSC's PKCS#11 module (apt install opensc opensc-pkcs11);\n"
     "- a reader plugged in; most USB readers need no driver of their own (CCID);\n"
     "- the card pushed all the way in, chip first and facing up.\n"
     "\n"
     "If the service says it refuses this session, an administrator has to allow it for "
     "remote logins (a polkit rule; 'cacreg status' prints the one to add).\n"
     "\n"
     "If the card is in but cannot be read, take it out, wipe the gold contacts gently and "
     "put it back. A card that still cannot be read needs the CAC office."},
    {"Using the card in web browsers on Linux",
     "Browsers reach the card through the same OpenSC module.\n"
     "\n"
     "Firefox: Settings, Privacy & Security, Security Devices, Load; give it a name and the "
     "module /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so (or p11-kit-proxy.so, which brings "
     "every installed module). The card's certificates then appear when a site asks for "
     "one.\n"
     "\n"
     "Chromium and Chrome use the NSS database in your home directory: add the module with "
     "modutil -dbdir sql:$HOME/.pki/nssdb -add OpenSC -libfile "
     "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so, then restart the browser.\n"
     "\n"
     "Sites also need the DoD root certificates installed as trusted authorities."},
    {"Forgotten or expired password",
     "You do not need your password for a CAC login: it works with the card and PIN alone "
     "and gives the password another 150 days.\n"
     "\n"
     "To get a new password, choose F on the start screen and give your username. If the "
     "account exists, the portal sends instructions to the email address it has for you; "
     "it does not say whether the account exists.\n"
     "\n"
     "After too many wrong passwords the account locks; a CAC login still works, or the "
     "help desk can unlock it."},
    {"More than one CAC",
     "You can log in with any of your cards. Each CAC login records the card you used and "
     "drops the certificates of the card registered before, so the newest card you logged "
     "in with is the one on file.\n"
     "\n"
     "A card registered to another account is refused: clear it there first (log in to that "
     "account with its password, choose C), or ask the help desk."},
    {"The 150-day password",
     "Every CAC login moves your portal password's expiry date to 150 days from that day. "
     "The date is shown after the login. Logging out and in again with the card renews it "
     "again; a password login does not."},
    {"What the problems mean",
     "Wrong PIN: a CAC allows 3 tries; the count of tries left is shown. A locked PIN can "
     "only be reset at a CAC office (RAPIDS).\n"
     "\n"
     "Access forbidden (403): the portal refused the card. The problem page says why: the "
     "wrong certificate (an email one instead of the identity one), a card that expired or "
     "was revoked, an issuer the portal does not accept, no account for the card's holder, "
     "an account that may not use a CAC, or a card registered to someone else.\n"
     "\n"
     "Not valid yet, or expired when it should not be: check this machine's date and time; "
     "the problem page says when the clock is off from the portal's.\n"
     "\n"
     "Cannot be reached, or not safe: a network problem, or a server whose identity could "
     "not be verified. Nothing was sent; tell the help desk if it goes on.\n"
     "\n"
     "Card removed: everything typed was cleared and you are back at the start. Nothing was "
     "half done."},
    {"Keys",
     "Everything works from the keyboard; no function keys are needed.\n"
     "- Up/Down (or j/k) move, Enter chooses, Esc goes one step back.\n"
     "- The letter before a choice picks it at once.\n"
     "- In fields: Tab moves between them, Backspace erases, Ctrl-U clears.\n"
     "- H or F1 opens this help where nothing is being typed; Ctrl-L redraws the screen.\n"
     "\n"
     "PINs and passwords are shown as stars, kept in locked memory, sent once and wiped. "
     "Left alone for a while, any step goes back to the start and clears what was typed."},
};

const size_t tui_help_count = sizeof tui_help_pages / sizeof tui_help_pages[0];
