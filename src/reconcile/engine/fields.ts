// Key recognition: free-form export rows (any spelling of "First Name") -> one canonical record.
import { asText } from './text.js';

export type CanonicalField =
  | 'firstName' | 'middleName' | 'lastName' | 'otherLastName' | 'fullName'
  | 'dateOfBirth' | 'birthDay' | 'birthMonth' | 'birthYear' | 'email' | 'phone' | 'gender'
  | 'streetNumber' | 'addressLine1' | 'addressLine2' | 'city' | 'state' | 'postalCode' | 'country'
  | 'memberId'
  | 'serviceDate' | 'service' | 'amount' | 'amountCents'
  | 'transactionId';

/** A raw record with its keys recognised; values are still raw text (normalisers run later). */
export interface CanonicalRecord {
  firstName: string | null;
  middleName: string | null;
  lastName: string | null;
  /** Maiden / previous / alias surnames: a married-name change must still match. */
  otherLastNames: string[];
  fullName: string | null;
  dateOfBirth: string | null;
  /** A birth date split over three columns; joined when there is no whole date. */
  birthDay: string | null;
  birthMonth: string | null;
  birthYear: string | null;
  emails: string[];
  phones: string[];
  gender: string | null;
  streetNumber: string | null;
  addressLine1: string | null;
  addressLine2: string | null;
  city: string | null;
  state: string | null;
  postalCode: string | null;
  country: string | null;
  memberIds: string[];
  serviceDate: string | null;
  service: string | null;
  amount: string | null;
  amountCents: number | null;
  /** The transaction's own id on its system (POS invoice or ticket number, redemption id). */
  transactionId: string | null;
}

export function emptyRecord(): CanonicalRecord {
  return {
    firstName: null, middleName: null, lastName: null, otherLastNames: [], fullName: null,
    dateOfBirth: null, birthDay: null, birthMonth: null, birthYear: null, emails: [], phones: [], gender: null,
    streetNumber: null, addressLine1: null, addressLine2: null, city: null, state: null, postalCode: null,
    country: null, memberIds: [], serviceDate: null, service: null, amount: null, amountCents: null,
    transactionId: null,
  };
}

/**
 * Recognised spellings, compared after {@link normaliseKey} (lower-case, letters and digits only),
 * so "First Name", first_name, FIRST-NAME and firstName are all "firstname". Spanish spellings
 * (Nombre, Apellidos, Fecha de nacimiento, Correo electrónico, Teléfono, Dirección, Código postal, ...)
 * are recognised like the English ones; accents fold away ("Teléfono" is "telefono").
 * docs/reconciliation.md lists these for users: keep the two in step.
 */
const ALIASES: Record<CanonicalField, readonly string[]> = {
  firstName: [
    'firstname', 'first', 'fname', 'givenname', 'given', 'forename', 'forenames', 'namefirst', 'christianname',
    'preferredname', 'nickname', 'patientfirstname', 'clientfirstname', 'memberfirstname', 'customerfirstname',
    'guestfirstname', 'firstnm',
    'nombre', 'nombres', 'primernombre', 'nombredepila', 'nombrepaciente', 'nombrecliente', 'nombredelpaciente',
    'nombredelcliente', 'nombresocio',
  ],
  middleName: ['middlename', 'middle', 'middleinitial', 'mi', 'namemiddle', 'secondname', 'segundonombre'],
  lastName: [
    'lastname', 'last', 'lname', 'surname', 'familyname', 'family', 'namelast', 'patientlastname',
    'clientlastname', 'memberlastname', 'customerlastname', 'guestlastname', 'lastnm',
    'apellido', 'apellidos', 'primerapellido', 'apellidopaterno', 'apellidodelpaciente', 'apellidodelcliente',
  ],
  otherLastName: [
    'maidenname', 'previouslastname', 'formerlastname', 'birthname', 'priorlastname', 'aliaslastname', 'othersurname',
    // A Spanish second surname (the mother's) is compared as an alternative surname.
    'segundoapellido', 'apellidomaterno', 'apellidodesoltera',
  ],
  fullName: [
    'name', 'fullname', 'patientname', 'clientname', 'membername', 'customername', 'guestname', 'patient',
    'client', 'member', 'customer', 'guest', 'displayname', 'contactname', 'legalname',
    'nombrecompleto', 'nombreyapellidos', 'nombreyapellido', 'paciente', 'cliente', 'socio', 'miembro',
  ],
  dateOfBirth: [
    'dob', 'dateofbirth', 'birthdate', 'birthday', 'birth', 'bdate', 'bday', 'dobmmddyyyy', 'dobddmmyyyy',
    'dobyyyymmdd', 'patientdob', 'clientdob', 'memberdob', 'customerdob', 'datebirth',
    'fechadenacimiento', 'fechanacimiento', 'fnacimiento', 'fechanac', 'fecnac', 'nacimiento',
  ],
  // "Birth Day" normalises to "birthday", a whole date: it is read as the day in prepare.ts when
  // the month and year columns are there too.
  birthDay: ['dobday', 'dobdd', 'dayofbirth', 'birthdateday', 'birthdd', 'day', 'dd', 'dia', 'diadenacimiento', 'dianacimiento'],
  birthMonth: [
    'birthmonth', 'dobmonth', 'dobmm', 'monthofbirth', 'birthdatemonth', 'birthmm', 'month', 'mm', 'mes',
    'mesdenacimiento', 'mesnacimiento',
  ],
  birthYear: [
    'birthyear', 'dobyear', 'dobyyyy', 'yearofbirth', 'birthdateyear', 'birthyyyy', 'year', 'yyyy', 'ano',
    'anodenacimiento', 'anonacimiento',
  ],
  email: [
    'email', 'emailaddress', 'mail', 'emailid', 'email1', 'email2', 'primaryemail', 'personalemail',
    'patientemail', 'clientemail', 'memberemail', 'customeremail', 'emailaddr', 'contactemail',
    'correo', 'correoelectronico', 'correoe', 'direcciondecorreo', 'direcciondecorreoelectronico',
  ],
  phone: [
    'phone', 'phonenumber', 'phoneno', 'phonenum', 'mobile', 'mobilephone', 'mobilenumber', 'mobileno', 'cell',
    'cellphone', 'cellnumber', 'telephone', 'tel', 'homephone', 'workphone', 'primaryphone', 'contactnumber',
    'contactphone', 'phone1', 'phone2', 'ph', 'sms', 'patientphone', 'clientphone', 'memberphone',
    'customerphone', 'phonemobile', 'phonehome',
    'telefono', 'telefonos', 'celular', 'movil', 'telefonomovil', 'telefonocelular', 'telefonofijo',
    'telefonodecasa', 'numerodetelefono', 'numerodecelular', 'whatsapp',
  ],
  gender: ['gender', 'sex', 'sexo', 'genero'],
  streetNumber: ['streetnumber', 'streetno', 'housenumber', 'houseno', 'streetnum', 'buildingnumber', 'numeroexterior', 'numerodecalle'],
  addressLine1: [
    'address', 'address1', 'addressline1', 'addr1', 'addr', 'street', 'streetaddress', 'street1', 'line1',
    'mailingaddress', 'homeaddress', 'streetline1', 'addressstreet',
    'direccion', 'domicilio', 'calle', 'direccion1', 'calleynumero',
  ],
  addressLine2: [
    'address2', 'addressline2', 'addr2', 'street2', 'line2', 'apt', 'suite', 'unit', 'apartment', 'streetline2',
    'direccion2', 'numerointerior', 'colonia', 'departamento', 'depto',
  ],
  city: ['city', 'suburb', 'town', 'locality', 'municipality', 'cityname', 'towncity', 'addresscity', 'ciudad', 'municipio', 'localidad', 'poblacion'],
  state: ['state', 'province', 'region', 'stateprovince', 'stateorprovince', 'statecode', 'st', 'territory', 'addressstate', 'estado', 'provincia'],
  postalCode: [
    'zip', 'zipcode', 'postcode', 'postalcode', 'postal', 'zippostalcode', 'postalzip', 'zip5', 'pincode',
    'addresszip', 'addresspostalcode',
    'codigopostal', 'cp', 'codpostal', 'codigozip',
  ],
  country: ['country', 'countrycode', 'countryname', 'pais'],
  memberId: [
    'memberid', 'membernumber', 'memberno', 'loyaltyid', 'loyaltynumber', 'alleid', 'allememberid', 'aspireid',
    'aspirememberid', 'accountnumber', 'accountid', 'customerid', 'customernumber', 'clientid', 'clientnumber',
    'patientid', 'patientnumber', 'externalid', 'mrn', 'medicalrecordnumber', 'chartnumber', 'guestid',
    'numerodesocio', 'numerosocio', 'nodesocio', 'idsocio', 'iddesocio', 'numerodemiembro', 'idmiembro',
    'numerodecliente', 'idcliente', 'numerodepaciente', 'idpaciente', 'expediente', 'numerodeexpediente',
  ],
  serviceDate: [
    'date', 'servicedate', 'transactiondate', 'redemptiondate', 'redeemeddate', 'redeemedat', 'visitdate',
    'appointmentdate', 'treatmentdate', 'purchasedate', 'saledate', 'dateofservice', 'dos', 'posteddate',
    'postdate', 'orderdate', 'datetime', 'starttime', 'start', 'startsat', 'scheduledat', 'transactiontime',
    'redemptiontime', 'redeemedon', 'redemptionon', 'saleon', 'postedon',
    'redemptiontime',
    'fecha', 'fechadeservicio', 'fechadeventa', 'fechadecanje', 'fechadecompra', 'fechadelacita', 'fechadevisita',
  ],
  service: [
    'service', 'servicename', 'product', 'productname', 'treatment', 'treatmentname', 'item', 'itemname',
    'description', 'procedure', 'procedurename', 'offer', 'offername', 'brand', 'sku', 'lineitem',
    'memo', 'itemdescription', 'productdescription', 'servicedescription',
    'servicio', 'producto', 'tratamiento', 'concepto', 'descripcion', 'procedimiento', 'marca',
  ],
  amount: [
    'amount', 'total', 'price', 'value', 'reward', 'rewardamount', 'rewardvalue', 'saleamount', 'subtotal',
    'paid', 'amountpaid', 'netamount', 'discount', 'rebate', 'redemptionamount', 'redeemedamount', 'charge',
    'totalamount', 'grandtotal', 'cost',
    'monto', 'importe', 'precio', 'valor', 'recompensa', 'descuento', 'pagado', 'montototal', 'importetotal',
  ],
  amountCents: ['pricecents', 'amountcents', 'totalcents', 'valuecents', 'rewardcents'],
  transactionId: [
    'transactionid', 'transactionnumber', 'transactionno', 'txnid', 'txn', 'invoice', 'invoiceid', 'invoicenumber',
    'invoiceno', 'receipt', 'receiptid', 'receiptnumber', 'receiptno', 'orderid', 'ordernumber', 'orderno', 'saleid',
    'salenumber', 'ticket', 'ticketid', 'ticketnumber', 'ticketno', 'redemptionid', 'redemptionnumber', 'claimid',
    'claimnumber', 'checkoutid', 'posid', 'reference', 'referencenumber', 'referenceno', 'ref', 'refno',
  ],
};

const FIELD_BY_KEY: ReadonlyMap<string, CanonicalField> = (() => {
  const map = new Map<string, CanonicalField>();
  for (const [field, spellings] of Object.entries(ALIASES) as [CanonicalField, readonly string[]][]) {
    for (const spelling of spellings) map.set(spelling, field);
  }
  // A canonical name as a column key, unless an export spelling already claims it: a "Birthday"
  // column is a whole date (dateOfBirth), though the canonical birthDay lower-cases the same.
  for (const field of Object.keys(ALIASES) as CanonicalField[]) if (!map.has(field.toLowerCase())) map.set(field.toLowerCase(), field);
  return map;
})();

/** fieldMapping targets: the canonical names as written ("birthDay"), then any recognised spelling. */
const CANONICAL_FIELDS: ReadonlySet<string> = new Set(Object.keys(ALIASES));

/** Loose rules for keys no alias covers ("Client Mobile #", "Birth Date (MM/DD/YYYY)"). */
const KEY_PATTERNS: readonly [RegExp, CanonicalField][] = [
  // "mailing address" is an address, not an e-mail.
  [/email|^mail$|^mail(?!ing)|correo/, 'email'],
  [/phone|mobile|cell|telephone|telefono|celular|(?:home|work|day|evening|primary|contact)ph(?:no|num)?$/, 'phone'],
  [/zip|postcode|postal/, 'postalCode'],
  // A whole date whose format is spelled out: "Birth Date (MM/DD/YYYY)", "Fecha de nacimiento (dd/mm/aaaa)".
  [/(?:birth|dob|nacimiento).*(?:mm.*dd|dd.*mm)/, 'dateOfBirth'],
  // One part of a birth date split over columns: "DOB Month", "Birth Year (YYYY)", "Día de nacimiento".
  [/(?:birth|dob|nacimiento).*(?:month|mes)|(?:month|mes).*(?:birth|dob|nacimiento)/, 'birthMonth'],
  [/(?:birth|dob|nacimiento).*(?:year|yyyy|ano)|(?:year|ano).*(?:birth|dob|nacimiento)/, 'birthYear'],
  [/(?:birth|dob|nacimiento).+(?:day|dd|dia)$|^(?:day|dia).*(?:birth|dob|nacimiento)/, 'birthDay'],
  [/birth|dob|nacimiento/, 'dateOfBirth'],
  [/segundoapellido|apellidomaterno/, 'otherLastName'],
  [/apellido/, 'lastName'],
  [/maiden|previoussurname|previouslastname/, 'otherLastName'],
  // "Name (Last, First)", "Last Name, First Name": one column holding the whole name.
  [/(?:first.*last|last.*first|fullname)/, 'fullName'],
  [/firstname|givenname|forename|first(?:nm|nme)?$/, 'firstName'],
  [/lastname|surname|familyname|last(?:nm|nme)?$/, 'lastName'],
  [/middlename/, 'middleName'],
  [/suburb|city|town/, 'city'],
  [/(?:address|addr)(?:line)?2|street2/, 'addressLine2'],
  [/street|address|addr(?:line)?1?$/, 'addressLine1'],
  [/province|state/, 'state'],
  [/memberid|loyalty|membernumber|accountnumber|rewards?(?:id|no|num|number)$/, 'memberId'],
  // "Cust Name", "Pt Name", "Guest Name": a person's whole name.
  [/^(?:pt|cust|mbr|patient|client|customer|member|guest|contact)name$/, 'fullName'],
  // "Invoice #", "Txn No", "POS Ticket Number": the transaction's own id.
  [/^(?:pos)?(?:transaction|txn|invoice|receipt|order|ticket|sale|redemption|claim)(?:id|no|num|number)$/, 'transactionId'],
];

/** Keys that name a whole birth date but, beside month and year columns, hold its day ("Birth Day"). */
const BIRTHDAY_KEYS = new Set(['birthday', 'bday', 'bdate']);

/**
 * A column's field in the company of the file's other columns: "Birth Day" next to "Birth Month"
 * and "Birth Year" is the day, not the whole date.
 */
export function recogniseKeyAmong(key: string, fields: ReadonlySet<CanonicalField | null>): CanonicalField | null {
  const field = recogniseKey(key);
  if (field === 'dateOfBirth' && fields.has('birthMonth') && fields.has('birthYear')
    && BIRTHDAY_KEYS.has(normaliseKey(key))) return 'birthDay';
  return field;
}

/** Case- and punctuation-insensitive key: "First Name", first_name and firstName all become "firstname". */
export function normaliseKey(key: string): string {
  return key.normalize('NFKD').toLowerCase().replace(/[^a-z0-9]/g, '');
}

/** The canonical field for an export key, or null when it is not recognised. */
export function recogniseKey(key: string): CanonicalField | null {
  // "Member #", "Customer #", "Phone #": the sign means "number" ("Member #" is an id, not a name).
  const normalised = normaliseKey(key.replace(/#/g, ' number '));
  if (normalised === '') return null;
  const exact = FIELD_BY_KEY.get(normalised);
  if (exact !== undefined) return exact;
  for (const [pattern, field] of KEY_PATTERNS) if (pattern.test(normalised)) return field;
  return null;
}

/** Keys of nested objects whose every value is an identifier ({ externalIds: { alle: "123" } }). */
const ID_CONTAINERS = new Set(['externalids', 'ids', 'identifiers', 'memberids', 'loyaltyids']);
const MAX_DEPTH = 3;

type Assignment = { field: CanonicalField; value: unknown };

function collectAssignments(
  object: Record<string, unknown>,
  mapping: ReadonlyMap<string, CanonicalField | null>,
  prefix: string,
  depth: number,
  out: Assignment[],
): void {
  for (const [key, value] of Object.entries(object)) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    const explicit = mapping.has(path) ? mapping.get(path) : mapping.get(normaliseKey(path));
    if (explicit === null) continue; // mapped to "ignore"
    if (explicit !== undefined) {
      out.push({ field: explicit, value });
      continue;
    }
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      if (depth >= MAX_DEPTH) continue;
      const nested = value as Record<string, unknown>;
      if (ID_CONTAINERS.has(normaliseKey(key))) {
        for (const id of Object.values(nested)) out.push({ field: 'memberId', value: id });
      } else {
        collectAssignments(nested, mapping, path, depth + 1, out);
      }
      continue;
    }
    // "address" + "line1" reads better as one key than "line1" alone; a parent like "patient" adds nothing.
    const parentKey = prefix === '' ? '' : normaliseKey(prefix.slice(prefix.lastIndexOf('.') + 1));
    const field = (parentKey !== '' ? FIELD_BY_KEY.get(parentKey + normaliseKey(key)) : undefined) ?? recogniseKey(key);
    if (field === null) continue;
    if (Array.isArray(value)) {
      for (const item of value) out.push({ field, value: item });
    } else {
      out.push({ field, value });
    }
  }
}

/** Explicit fieldMapping (input key -> canonical field, or "ignore"), keys matched exactly or normalised. */
export function compileFieldMapping(fieldMapping: Record<string, string> | undefined): Map<string, CanonicalField | null> {
  const compiled = new Map<string, CanonicalField | null>();
  if (fieldMapping === undefined) return compiled;
  for (const [inputKey, target] of Object.entries(fieldMapping)) {
    const normalisedTarget = normaliseKey(target);
    const field = normalisedTarget === '' || normalisedTarget === 'ignore' || normalisedTarget === 'none'
      ? null
      : CANONICAL_FIELDS.has(target) ? target as CanonicalField : (FIELD_BY_KEY.get(normalisedTarget) ?? null);
    compiled.set(inputKey, field);
    compiled.set(normaliseKey(inputKey), field);
  }
  return compiled;
}

function assign(record: CanonicalRecord, field: CanonicalField, raw: unknown): void {
  if (field === 'amountCents') {
    if (typeof raw === 'number' && Number.isFinite(raw)) record.amountCents ??= Math.round(raw);
    else {
      const text = asText(raw);
      if (text !== null && /^-?\d+$/.test(text)) record.amountCents ??= Number(text);
    }
    return;
  }
  const text = asText(raw);
  if (text === null) return;
  switch (field) {
    case 'email': if (!record.emails.includes(text)) record.emails.push(text); return;
    case 'phone': if (!record.phones.includes(text)) record.phones.push(text); return;
    case 'memberId': if (!record.memberIds.includes(text)) record.memberIds.push(text); return;
    case 'otherLastName': record.otherLastNames.push(text); return;
    default:
      // The first value seen for a single-valued field wins; later duplicates are ignored.
      record[field] ??= text;
  }
}

/**
 * Recognises the keys of one free-form incoming object. Non-objects give null (the caller
 * reports them unmatched). `mapping` comes from {@link compileFieldMapping} and wins over recognition.
 */
export function recogniseRecord(
  input: unknown,
  mapping: ReadonlyMap<string, CanonicalField | null> = new Map(),
): CanonicalRecord | null {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return null;
  const assignments: Assignment[] = [];
  collectAssignments(input as Record<string, unknown>, mapping, '', 0, assignments);
  const record = emptyRecord();
  for (const { field, value } of assignments) assign(record, field, value);
  return record;
}
