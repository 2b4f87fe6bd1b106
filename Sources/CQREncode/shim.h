// libqrencode (Debian's libqrencode-dev): the only C boundary for QR codes. Only PatientCard
// imports it, and it uses QRcode_encodeString and QRcode_free alone.
#include <qrencode.h>
